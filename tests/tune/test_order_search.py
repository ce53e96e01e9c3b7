"""The VM-order objectives (``latency``, ``memory``) through the ask/tell ``search`` with a fake
builder and runner and the JSONL database (no TVM build, no device).

Pick rules (beyond noise, else TVM's order; ties keep TVM's order; the fewest planned bytes for
memory), the memory budget, build and measure errors as results, resume (nothing measured
twice, also from the records the tuner wrote before they were typed), TVM's order measured
again as the anchor when an earlier run recorded it, and one record key for ``"llvm"`` and
``tvm.target.Target("llvm")``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from tvm_sched.tune.database import Database
from tvm_sched.tune.objective import Candidate, OrderObjective, search
from tvm_sched.tune.record import MeasureResult, TuneRecord, latency_stats

MODEL, TARGET, DEVICE = "mh", '{"kind":"llvm"}', "local"


def cands(*specs):
    """TVM's order, then (name, cache-miss proxy, planned bytes) proposals."""
    out = [Candidate("tvm", "baseline", ((0, 1, 2, 3),), True,
                {"planned": 1000, "cache_miss": 500, "peak": 1000})]
    for i, (name, miss, planned) in enumerate(specs):
        out.append(Candidate(name, name.split("#")[0], ((i + 1, 0, 2, 3),), False,
                        {"planned": planned, "cache_miss": miss, "peak": planned}))
    return out


@dataclass
class FakeBuilt:
    error: str | None = None
    allocated_bytes: int | None = None
    seconds: float = 0.01
    needs_kernels: bool = True


class FakeBuilder:
    """Planned bytes per name (the candidate's proxy by default); ``fail``: build errors."""

    def __init__(self, planned=None, fail=()):
        self.planned = planned or {}
        self.fail = set(fail)
        self.built: dict[str, FakeBuilt] = {}
        self.names: list[str] = []

    def build(self, c):
        self.names.append(c.name)
        b = FakeBuilt("no such order" if c.name in self.fail else None,
                      self.planned.get(c.name, c.proxy["planned"]))
        self.built[c.hash] = b
        return b


class FakeRunner:
    """Latency per name with a fixed relative spread, as the Measurer reports it: the anchor in
    every batch, told only when it is among the built; build errors and ``crash`` as errors."""

    def __init__(self, latency, spread=0.01, crash=()):
        self.latency = latency
        self.spread = spread
        self.crash = set(crash)
        self.batches: list[list[str]] = []

    def samples(self, name):
        lat = self.latency[name]
        return [lat * (1 + self.spread * d) for d in (-1, -0.5, 0, 0.5, 1)]

    def measure(self, built, anchor, done):
        self.batches.append([anchor[0].name] + [c.name for c, _ in built
                                                if c.hash != anchor[0].hash])
        vm = self.samples(anchor[0].name)
        for c, b in built:
            m = MeasureResult(c.hash, "cpu#0")
            if b.error:
                m.error = f"build failed: {b.error}"
            elif c.name in self.crash:
                m.error = "load/run failed: crash"
            else:
                m.samples, m.anchor, m.check = self.samples(c.name), list(vm), 0.0
            done(m)


def make_record(builder):
    """As the tuner makes them: the build's facts from the builder."""

    def make(c, m):
        b = builder.built[c.hash]
        return TuneRecord.make_order(c, m, model="m", model_hash=MODEL, target=TARGET,
                                     device_key=DEVICE,
                                     planned_bytes=None if b.error else b.allocated_bytes,
                                     build_s=b.seconds, fast_build=b.needs_kernels,
                                     cache_bytes=32768)
    return make


def key(c):
    return (MODEL, c.hash, TARGET, DEVICE)


def run(tmp_path, pool, latency, *, objective="latency", budget=None, top_k=8, builder=None,
        runner=None, db=None, progress=None, keep_default=True):
    builder = builder or FakeBuilder()
    runner = runner or FakeRunner(latency)
    db = db or Database(tmp_path / "records.jsonl")
    out = search(OrderObjective(objective, keep_default), pool, builder=builder, runner=runner,
                 database=db, key=key, make_record=make_record(builder), budget=budget,
                 top_k=top_k, progress=progress)
    return out, builder, runner, db


def test_latency_picks_the_fastest_beyond_noise_and_writes_typed_records(tmp_path):
    pool = cands(("a", 400, 900), ("b", 300, 1100), ("c", 450, 800))
    lat = {"tvm": 10e-3, "a": 8e-3, "b": 7e-3, "c": 9.95e-3}
    seen = []
    out, builder, runner, db = run(tmp_path, pool, lat, progress=lambda *a: seen.append(a[:3]))
    assert out.best.candidate == "b" and out.fastest.candidate == "b"
    assert out.measured_now == 4 and runner.batches == [["tvm", "b", "a", "c"]]
    assert [c.name for c in out.chosen] == ["tvm", "b", "a", "c"]  # baselines, then proxy
    assert ("build", 4, 4) in seen and ("measure", 4, 4) in seen
    recs = {r.candidate: r for r in out.records}
    assert recs["tvm"].kind == "vm" and {recs[n].kind for n in "abc"} == {"order"}
    b = recs["b"].order_facts
    assert recs["b"].relative == pytest.approx(0.7) and b.orders == [[2, 0, 2, 3]]
    assert b.planned_bytes == 1100 and b.proxy["cache_miss"] == 300
    back = Database(tmp_path / "records.jsonl").records()
    assert back[key(pool[2])] == recs["b"]  # the line reads back as the same record
    # each proxy's rank correlation with the measured medians
    assert out.spearman["cache_miss"] == pytest.approx(1.0)
    assert set(out.spearman) == {"cache_miss", "planned", "peak"}


def test_within_noise_keeps_tvm_order_and_reports_the_fastest(tmp_path):
    pool = cands(("a", 400, 900))
    out, *_ = run(tmp_path, pool, {"tvm": 10e-3, "a": 9.9e-3},
                  runner=FakeRunner({"tvm": 10e-3, "a": 9.9e-3}, spread=0.05))
    assert out.best.kind == "vm" and out.fastest.candidate == "a"
    out, *_ = run(tmp_path / "free", pool, {"tvm": 10e-3, "a": 9.9e-3},
                  runner=FakeRunner({"tvm": 10e-3, "a": 9.9e-3}, spread=0.05),
                  keep_default=False)
    assert out.best.candidate == "a"


def test_ties_keep_tvm_order(tmp_path):
    pool = cands(("a", 400, 1000), ("b", 300, 1000))
    lat = {"tvm": 10e-3, "a": 10e-3, "b": 10e-3}
    out, *_ = run(tmp_path / "lat", pool, lat)
    assert out.best.candidate == "tvm"
    out, *_ = run(tmp_path / "mem", pool, lat, objective="memory")
    assert out.best.candidate == "tvm"  # the same planned bytes: TVM's order stays


def test_memory_picks_the_fewest_planned_bytes_then_the_fastest(tmp_path):
    pool = cands(("a", 400, 700), ("b", 300, 700), ("c", 200, 900))
    lat = {"tvm": 10e-3, "a": 11e-3, "b": 10.5e-3, "c": 5e-3}
    out, *_ = run(tmp_path, pool, lat, objective="memory")
    assert out.best.candidate == "b" and out.best is out.fastest
    # the measured bytes decide, not the proxy
    out, *_ = run(tmp_path / "built", pool, lat, objective="memory",
                  builder=FakeBuilder(planned={"c": 600}))
    assert out.best.candidate == "c"


def test_a_memory_budget_leaves_big_orders_unmeasured_and_unpicked(tmp_path):
    pool = cands(("fast", 100, 1200), ("small", 400, 800), ("mid", 300, 950))
    lat = {"tvm": 10e-3, "fast": 5e-3, "small": 8e-3, "mid": 7e-3}
    # "mid" fits by its proxy but its executable allocates more than the budget
    builder = FakeBuilder(planned={"mid": 1050})
    out, builder, *_ = run(tmp_path, pool, lat, budget=1000, builder=builder)
    assert "fast" not in builder.names
    assert {r.candidate for r in out.records} == {"tvm", "small", "mid"}
    assert out.best.candidate == "small"  # TVM's order (1000 B) fits, mid does not
    out, *_ = run(tmp_path, pool, lat, budget=900)
    assert out.best.candidate == "small"  # TVM's order is over this budget: not the fallback
    out, *_ = run(tmp_path, pool, lat, budget=700)
    assert (out.best, out.fastest) == (None, None)


def test_build_and_measure_errors_are_results(tmp_path):
    pool = cands(("broken", 100, 900), ("crashes", 200, 900), ("ok", 300, 900))
    lat = {"tvm": 10e-3, "ok": 7e-3, "crashes": 1e-3, "broken": 1e-3}
    out, *_ = run(tmp_path, pool, lat, builder=FakeBuilder(fail={"broken"}),
                  runner=FakeRunner(lat, crash={"crashes"}))
    recs = {r.candidate: r for r in out.records}
    assert recs["broken"].error.startswith("build failed")
    assert recs["broken"].order_facts.planned_bytes is None
    assert recs["crashes"].error.startswith("load/run failed") and not recs["crashes"].ok
    assert out.best.candidate == "ok" and out.measured_now == 4


def test_resume_measures_nothing_twice(tmp_path):
    pool = cands(("a", 400, 900), ("b", 300, 900))
    lat = {"tvm": 10e-3, "a": 8e-3, "b": 7e-3}
    first, *_ = run(tmp_path, pool, lat)
    lines = (tmp_path / "records.jsonl").read_text().count("\n")
    again, builder, runner, _ = run(tmp_path, pool, lat)
    assert again.measured_now == 0 and runner.batches == [] and builder.names == []
    assert (tmp_path / "records.jsonl").read_text().count("\n") == lines
    assert again.best == first.best and len(again.records) == 3


def test_tvm_order_measured_before_is_measured_again_as_the_anchor(tmp_path):
    pool = cands(("a", 400, 900), ("b", 300, 900))
    lat = {"tvm": 10e-3, "a": 8e-3, "b": 7e-3}
    run(tmp_path, pool, lat, top_k=1)  # tvm and b
    out, builder, runner, db = run(tmp_path, pool, lat, top_k=2)
    assert runner.batches == [["tvm", "a"]]  # the anchor in the batch ...
    assert builder.names == ["a", "tvm"] and out.measured_now == 1  # ... but not told again
    assert (tmp_path / "records.jsonl").read_text().count("\n") == 3
    assert out.records[2].candidate == "a" and out.records[2].anchor_samples
    assert out.best.candidate == "b"


def test_search_needs_tvm_order(tmp_path):
    with pytest.raises(ValueError, match="kind='vm'"):
        run(tmp_path, cands(("a", 1, 1))[1:], {"a": 1e-3})


def legacy_line(c, samples, anchor, planned, *, target="llvm", error=None):
    """A line as the tuner wrote it before its records were typed (``records.jsonl``)."""
    return json.dumps({
        "format": 1, "model": "m", "model_hash": MODEL, "order_hash": c.hash, "target": target,
        "device_key": DEVICE, "device": "cpu#0", "candidate": c.name, "aliases": c.aliases,
        "source": c.source, "baseline": c.baseline, "orders": [list(o) for o in c.orders],
        "proxy": dict(c.proxy), "cache_bytes": 32768, "planned_bytes": planned,
        "build_s": 0.0123, "fast_build": True, "latency": latency_stats(samples),
        "samples": samples, "check": 0.0, "anchor": latency_stats(anchor),
        "relative": (float(np.median(samples)) / float(np.median(anchor))
                     if samples and anchor else None),
        "error": error, "time": "2025-01-01T00:00:00+00:00"}, separators=(",", ":"))


def test_records_written_before_they_were_typed_resume_and_decide_the_same(tmp_path):
    """The previous tuner keyed a plain ``--target llvm`` by ``"llvm"`` and kept only the
    summary of each candidate's anchor: the records resume under the full target string and
    the pick still judges a candidate against its own batch's anchor."""
    pool = cands(("d", 400, 900))
    tvm_s = [0.95, 0.95, 1.0, 1.05, 1.05]
    d_s, d_anchor = [0.88, 0.88, 0.9, 0.92, 0.92], [0.90, 0.90, 0.91, 0.93, 0.93]
    path = tmp_path / "records.jsonl"
    path.write_text(legacy_line(pool[0], tvm_s, tvm_s, 1000) + "\n"
                    + legacy_line(pool[1], d_s, d_anchor, 900) + "\n")
    db = Database(path, canonical_target=lambda t: TARGET if t == "llvm" else t)
    out, builder, runner, _ = run(tmp_path, pool, {}, db=db)
    assert out.measured_now == 0 and runner.batches == [] and builder.names == []
    assert db.skipped == 0
    tvm_r, d = out.records
    assert (tvm_r.kind, d.kind, d.target) == ("vm", "order", TARGET)
    assert d.relative == pytest.approx(0.9 / 0.91) and d.anchor["q1"] == pytest.approx(0.90)
    # d's upper quartile (0.92) is not below its own anchor's lower quartile (0.90), though it
    # is below TVM's record's (0.95): within noise, TVM's order is kept
    assert out.best is tvm_r and out.fastest is d
    # the target string as written is still what the file says without canonical_target
    assert {r.target for r in Database(path)} == {"llvm"}


def test_lane_records_of_format_1_still_read(tmp_path):
    """A line as the lane path wrote it (``lane_records.jsonl``)."""
    line = {"model_hash": "h", "order_hash": "0123456789abcdef", "target": TARGET,
            "device_key": DEVICE, "candidate": "gaus", "source": "gaus", "kind": "lanes",
            "lanes": 2, "order": [0, 1], "lane": [0, 1], "predicted": 1e-3, "arena_bytes": 64,
            "baseline": False, "samples": [1e-3, 2e-3], "anchor_samples": [2e-3, 2e-3],
            "check": 0.0, "error": None, "device": "d", "model": "m", "aliases": [],
            "format": 1, "latency": latency_stats([1e-3, 2e-3]),
            "speedup": {"median": 1.5, "q1": 1.25, "q3": 1.75, "n": 2}}
    (tmp_path / "lane_records.jsonl").write_text(json.dumps(line) + "\n")
    (r,) = Database(tmp_path / "lane_records.jsonl")
    f = r.lane_facts
    assert (r.kind, f.lanes, f.lane, f.arena_bytes, r.facts) == ("lanes", 2, [0, 1], 64, f)
    assert r.order_facts.orders is None
    assert r.speedup["median"] == pytest.approx(1.5)
    assert TuneRecord.from_dict(r.to_dict()) == r


def test_an_infinite_output_check_is_not_written():
    """The Measurer's check is inf when a device has no reference; the line stays JSON."""
    c = cands()[0]
    r = TuneRecord.make_order(c, MeasureResult(c.hash, "d", check=float("inf"), error="no ref"),
                              model="m", model_hash=MODEL, target=TARGET, device_key=DEVICE,
                              planned_bytes=None, build_s=0.0, fast_build=True, cache_bytes=1)
    assert r.check is None
    json.dumps(r.to_dict(), allow_nan=False)


def test_the_loop_modules_need_no_tvm():
    code = ("import sys, tvm_sched.tune.objective, tvm_sched.tune.database, "
            "tvm_sched.tune.pick, tvm_sched.tune.record; "
            "print(sorted(m for m in ('tvm', 'torch', 'ortools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_only_tvms_own_order_is_the_anchor():
    tvm_order = Candidate("tvm", "baseline", ((0, 1, 2),), baseline=True)
    other = Candidate("topo-sort depth-first from-inputs", "baseline", ((0, 2, 1),),
                      baseline=True)
    assert (tvm_order.kind, other.kind) == ("vm", "order")
    assert Candidate("tvm", "random", ((0, 1, 2),)).kind == "order"  # only the baseline
    assert tvm_order.hash == Candidate("x", "y", ((0, 1, 2),)).hash  # the orders alone


def test_a_target_string_and_its_target_object_share_the_record_key(tmp_path, monkeypatch):
    """The previous tuner keyed ``"llvm"`` by the string and ``Target("llvm")`` by its full
    form, so the same run with the object measured everything again."""
    import tvm

    from tvm_sched.tune import tuner
    from tvm_sched.tune.model import target_key
    from tvm_sched.tune.runner import Devices

    assert target_key("llvm") == target_key(tvm.target.Target("llvm")) != "llvm"
    seen = []
    monkeypatch.setattr(tuner, "_tune", lambda model, target, key_target, *a: seen.append(
        key_target))
    for target in ("llvm", tvm.target.Target("llvm")):
        tuner.tune(object(), target, Devices(), tmp_path)
    assert seen == [target_key("llvm")] * 2
    # records written under the short form are read under the full one
    c = cands()[0]
    (tmp_path / "r.jsonl").write_text(legacy_line(c, [1.0], [1.0], 10) + "\n")
    db = Database(tmp_path / "r.jsonl", canonical_target=target_key)
    assert list(db.records()) == [(MODEL, c.hash, target_key("llvm"), DEVICE)]

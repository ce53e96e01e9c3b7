"""The lane objective's ask/tell loop with a fake builder, runner and database (no TVM).

Pick rules (beyond noise, else the VM; ties by arena bytes, then name), the memory budget,
errors as results, resume (nothing measured twice), the proxy ranking and the typed records.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tvm_sched.tune.objective import (
    LaneCandidate,
    LaneObjective,
    MeasureResult,
    TuneRecord,
    search,
    spearman_or_none,
)
from tvm_sched.tune.record import RECORD_FORMAT, OrderFacts, paired_ratio

KEY = ("model", "llvm -keys=cpu", "local")


class FakeBuilder:
    def __init__(self, fail=()):
        self.fail = set(fail)
        self.built = []

    def build(self, c):
        self.built.append(c.name)
        return {"error": "no plan" if c.name in self.fail else None}


class FakeRunner:
    """Latency per candidate name (seconds) with a fixed spread; the VM is the anchor."""

    def __init__(self, latency, spread=0.01, crash=()):
        self.latency = latency
        self.spread = spread
        self.crash = set(crash)
        self.batches = []

    def measure(self, built, anchor, done):
        names = [c.name for c, _ in built]
        self.batches.append(names)
        items = [anchor] + [(c, b) for c, b in built if c.hash != anchor[0].hash]
        vm_lat = self.latency[anchor[0].name]
        vm = [vm_lat * (1 + self.spread * d) for d in (-1, -0.5, 0, 0.5, 1)]
        for c, b in items:
            if c.kind == "vm" and c.name not in names:
                continue
            res = MeasureResult(c.hash, "fake")
            if b["error"]:
                res.error = f"build failed: {b['error']}"
            elif c.name in self.crash:
                res.error = "load/run failed: crash"
            else:
                lat = self.latency[c.name]
                # round noise independent of the VM's (reversed): the pairs do not cancel it
                res.samples = [lat * (1 + self.spread * d) for d in (1, 0.5, 0, -0.5, -1)]
                res.anchor = list(vm)
            done(res)


class FakeDatabase:
    def __init__(self):
        self.lines = []

    def records(self):
        out = {}
        for d in self.lines:  # through the dict form, as the JSONL database stores them
            r = TuneRecord.from_dict(json.loads(json.dumps(d)))
            out[r.key] = r
        return out

    def append(self, rec):
        self.lines.append(rec.to_dict())


def _cands(specs):
    """specs: (name, predicted ms, arena bytes)."""
    out = [LaneCandidate("relax-vm", "baseline", "vm", 1, None, None, 10e-3, 1000, True)]
    for i, (name, pred, arena) in enumerate(specs):
        out.append(LaneCandidate(name, name.split("#")[0], "lanes", 2, (0, 1, 2), (0, i % 2, 1),
                                 pred * 1e-3, arena))
    return out


def _run(cands, latency, *, db=None, builder=None, runner=None, budget=None, top_k=8,
         spread=0.01):
    db = db or FakeDatabase()
    builder = builder or FakeBuilder()
    runner = runner or FakeRunner(latency, spread)

    def key(c):
        return (KEY[0], c.hash, KEY[1], KEY[2])

    def make(c, m):
        return TuneRecord.make(c, m, model="m", model_hash=KEY[0], target=KEY[1],
                               device_key=KEY[2])

    out = search(LaneObjective(), cands, builder=builder, runner=runner, database=db, key=key,
                 make_record=make, budget=budget, top_k=top_k)
    return out, db, builder, runner


def _distinct(specs):
    # give every candidate a different lane vector so hashes differ
    cands = _cands(specs)
    for i, c in enumerate(cands[1:]):
        c.lane = tuple(int(b) for b in f"{i:03b}")
    return cands


def test_the_fastest_beyond_noise_is_the_pick():
    cands = _distinct([("list", 6, 900), ("gaus", 5, 900), ("cpsat", 5.5, 900)])
    lat = {"relax-vm": 10e-3, "list": 8e-3, "gaus": 6e-3, "cpsat": 7e-3}
    out, *_ = _run(cands, lat)
    assert out.best.candidate == "gaus"
    assert out.fastest.candidate == "gaus"
    assert out.best.speedup["median"] == pytest.approx(10 / 6)
    assert out.measured_now == 4


def test_within_noise_keeps_the_vm_and_reports_the_fastest():
    cands = _distinct([("list", 6, 900)])
    lat = {"relax-vm": 10e-3, "list": 9.9e-3}
    out, *_ = _run(cands, lat, spread=0.05)  # IQRs overlap
    assert out.best.kind == "vm"
    assert out.fastest.candidate == "list"


def test_ties_go_to_fewer_arena_bytes_then_name():
    cands = _distinct([("b", 6, 900), ("a", 6, 900), ("c", 6, 500)])
    lat = {"relax-vm": 10e-3, "a": 5e-3, "b": 5e-3, "c": 5e-3}
    out, *_ = _run(cands, lat)
    assert out.best.candidate == "c"
    cands = _distinct([("b", 6, 900), ("a", 6, 900)])
    out, *_ = _run(cands, {"relax-vm": 10e-3, "a": 5e-3, "b": 5e-3})
    assert out.best.candidate == "a"


def test_memory_budget_leaves_big_plans_unmeasured_and_unpicked():
    cands = _distinct([("fast", 4, 5000), ("small", 6, 800)])
    lat = {"relax-vm": 10e-3, "fast": 4e-3, "small": 7e-3}
    out, _, builder, _ = _run(cands, lat, budget=1000)
    assert "fast" not in builder.built
    assert out.best.candidate == "small"
    assert {r.candidate for r in out.records} == {"relax-vm", "small"}


def test_top_k_by_the_proxy_and_baselines_always():
    cands = _distinct([("w", 9, 1), ("x", 7, 1), ("y", 5, 1), ("z", 6, 1)])
    cands[1].baseline = True  # w: a baseline despite its proxy
    lat = {"relax-vm": 10e-3, "w": 9e-3, "x": 8e-3, "y": 6e-3, "z": 7e-3}
    out, *_ = _run(cands, lat, top_k=2)
    assert [c.name for c in out.chosen] == ["relax-vm", "w", "y", "z"]


def test_errors_are_results_not_exceptions():
    cands = _distinct([("broken", 4, 900), ("crashes", 4.5, 900), ("ok", 6, 900)])
    lat = {"relax-vm": 10e-3, "ok": 7e-3, "crashes": 1e-3, "broken": 1e-3}
    out, *_ = _run(cands, lat, builder=FakeBuilder(fail={"broken"}),
                   runner=FakeRunner(lat, crash={"crashes"}))
    errs = {r.candidate: r.error for r in out.records}
    assert errs["broken"].startswith("build failed")
    assert errs["crashes"].startswith("load/run failed")
    assert out.best.candidate == "ok"


def test_resume_measures_nothing_twice():
    cands = _distinct([("list", 6, 900), ("gaus", 5, 900)])
    lat = {"relax-vm": 10e-3, "list": 8e-3, "gaus": 6e-3}
    out, db, _, _ = _run(cands, lat)
    lines = len(db.lines)
    runner = FakeRunner(lat)
    builder = FakeBuilder()
    again, db2, _, _ = _run(cands, lat, db=db, runner=runner, builder=builder)
    assert again.measured_now == 0 and runner.batches == [] and builder.built == []
    assert len(db2.lines) == lines
    assert again.best.candidate == out.best.candidate
    # one new candidate: only it is measured (with the VM as its batch's anchor, not re-told)
    more = _distinct([("list", 6, 900), ("gaus", 5, 900), ("new", 4, 900)])
    lat["new"] = 5e-3
    runner = FakeRunner(lat)
    third, db3, _, _ = _run(more, lat, db=db, runner=runner)
    assert runner.batches == [["new"]] and third.measured_now == 1
    assert third.best.candidate == "new"


def test_search_needs_the_vm():
    cands = _distinct([("list", 6, 900)])[1:]
    with pytest.raises(ValueError, match="Relax VM"):
        _run(cands, {"list": 1e-3})


def test_spearman_of_predicted_vs_measured():
    cands = _distinct([("a", 4, 1), ("b", 5, 1), ("c", 6, 1), ("d", 7, 1)])
    lat = {"relax-vm": 10e-3, "a": 5e-3, "b": 6e-3, "c": 7e-3, "d": 8e-3}
    out, *_ = _run(cands, lat)
    assert out.spearman == pytest.approx(1.0)
    lat = {"relax-vm": 10e-3, "a": 8e-3, "b": 7e-3, "c": 6e-3, "d": 5e-3}
    out, *_ = _run(cands, lat)
    assert out.spearman == pytest.approx(-1.0)
    assert spearman_or_none([1, 2], [3, 4]) is None
    assert spearman_or_none([1, 1, 1], [1, 2, 3]) is None


def test_paired_ratio_is_per_round():
    sp = paired_ratio([1.0, 2.0, 4.0], [2.0, 4.0, 8.0])
    assert sp["median"] == pytest.approx(2.0) and sp["q1"] == pytest.approx(2.0)
    assert paired_ratio([], [1.0]) is None


def test_record_round_trip_and_format():
    c = LaneCandidate("gaus", "gaus", "lanes", 2, (0, 1), (0, 1), 1e-3, 64)
    r = TuneRecord.make(c, MeasureResult(c.hash, "d", [1e-3, 2e-3], [2e-3, 2e-3]), model="m",
                        model_hash="h", target="llvm -keys=cpu", device_key="local")
    d = json.loads(json.dumps(r.to_dict()))
    assert d["format"] == RECORD_FORMAT and d["order_hash"] == c.hash
    back = TuneRecord.from_dict(d)
    assert back == r and back.key == ("h", c.hash, "llvm -keys=cpu", "local")
    with pytest.raises(ValueError, match="format"):
        TuneRecord.from_dict({**d, "format": RECORD_FORMAT + 1})
    with pytest.raises(TypeError):
        TuneRecord.from_dict({**d, "samples": ["fast"]})


def test_candidate_hash_depends_on_the_lanes():
    a = LaneCandidate("a", "x", "lanes", 2, (0, 1), (0, 1))
    b = LaneCandidate("b", "y", "lanes", 2, (0, 1), (0, 0))
    assert a.hash != b.hash
    assert a.hash == LaneCandidate("other", "z", "lanes", 2, (0, 1), (0, 1)).hash


def test_objective_module_needs_no_tvm():
    code = ("import sys, tvm_sched.tune.objective; "
            "print(sorted(m for m in ('tvm', 'torch', 'ortools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_objective_for_routes_the_vm_order_objectives_through_one_class():
    from types import SimpleNamespace

    from tvm_sched.tune.objective import OrderObjective, objective_for

    assert isinstance(objective_for("latency", lanes="auto"), LaneObjective)
    mem = objective_for("memory")
    assert isinstance(mem, OrderObjective) and mem.name == "memory"
    with pytest.raises(ValueError, match="latency or memory"):
        OrderObjective("energy")

    def cand(name, planned, miss, baseline=False):
        return SimpleNamespace(name=name, baseline=baseline,
                               proxy={"planned": planned, "cache_miss": miss})

    cands = [cand("tvm", 100, 50, True), cand("a", 90, 70), cand("b", 80, 90), cand("c", 70, 60)]
    assert [c.name for c in mem.rank(cands, None, 2)] == ["tvm", "c", "b"]
    lat = objective_for("latency")
    assert [c.name for c in lat.rank(cands, None, 2)] == ["tvm", "c", "a"]
    assert [c.name for c in lat.rank(cands, 75, 5)] == ["tvm", "c"]  # over budget left out

    def rec(name, planned, med):
        return TuneRecord("m", name, "llvm", "local", name, "test",
                          "vm" if name == "tvm" else "order",
                          facts=OrderFacts(planned_bytes=planned),
                          samples=[med * 0.99, med * 0.99, med, med * 1.01, med * 1.01])

    records = [rec("tvm", 100, 1.0), rec("c", 70, 0.8), rec("a", 90, 0.99)]
    assert mem.pick(records, None)[0].candidate == "c"
    assert lat.pick(records, None)[0].candidate == "c"  # beyond noise
    assert lat.pick(records[:1] + records[2:], None)[0].candidate == "tvm"  # within noise


def test_a_vm_over_the_budget_leaves_the_pick_to_the_fastest_plan_that_fits():
    # the VM's 1000 B are over the budget: no noise test against it, the fastest plan that fits
    cands = _distinct([("fits", 9.9, 500), ("also", 9.8, 600), ("big", 4, 5000)])
    lat = {"relax-vm": 10e-3, "fits": 9.9e-3, "also": 9.8e-3, "big": 4e-3}
    out, *_ = _run(cands, lat, budget=700, spread=0.05)
    assert out.best.candidate == "also"
    # and nothing that fits measured well: no pick at all (the VM does not fit either)
    out, *_ = _run(cands, lat, budget=700, runner=FakeRunner(lat, crash={"fits", "also"}))
    assert out.best is None


def test_the_lane_pick_pairs_each_round_with_the_vm_beside_it():
    """A machine whose speed drifts between rounds widens both latency distributions: a plan
    that wins every round side by side is beyond the noise although the quartiles overlap, and
    one that wins only half the rounds is not."""
    drift = [1.0, 1.3, 1.6, 1.9, 2.2, 2.5, 2.8, 3.1]
    vm = [1e-3 * d for d in drift]

    def rec(name, samples):
        return TuneRecord("m", name, "llvm", "local", name, "test", "lanes",
                          samples=samples, anchor_samples=vm)

    wins = rec("wins", [v / 1.1 for v in vm])
    half = rec("half", [v / (1.1 if i % 2 else 0.91) for i, v in enumerate(vm)])
    assert wins.latency["q3"] > wins.anchor["q1"]  # unpaired, the two overlap
    assert LaneObjective.beyond_noise(wins)
    assert not LaneObjective.beyond_noise(half)
    base = TuneRecord("m", "relax-vm", "llvm", "local", "relax-vm", "test", "vm",
                      samples=vm, anchor_samples=vm)
    assert LaneObjective().pick([base, half], None)[0].candidate == "relax-vm"
    assert LaneObjective().pick([base, half, wins], None)[0].candidate == "wins"

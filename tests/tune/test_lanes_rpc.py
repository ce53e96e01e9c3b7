"""Lane tuning over TVM RPC: a loopback tvm_sched server, resume, the exported plan, the demo.

The integration tests build a small zoo model; the CLI demo at small size is also ``slow``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.lanes import resolve_lanes


class _Session:
    def __init__(self, funcs):
        self.funcs = funcs

    def get_function(self, name):
        if name not in self.funcs:
            raise AttributeError(name)  # TVM raises its own kinds; any is accepted
        return self.funcs[name]


def test_resolve_lanes_auto_reads_the_device_cores():
    sess = _Session({"tvm_sched.runtime.num_cores": lambda: 6})
    assert resolve_lanes("auto", sess) == 6
    assert resolve_lanes("AUTO ", sess) == 6
    assert resolve_lanes(3, sess) == 3 and resolve_lanes("2", sess) == 2


@pytest.mark.parametrize("bad", ["0", -1, "two", "1.5", None])
def test_resolve_lanes_rejects_what_is_not_a_lane_count(bad):
    with pytest.raises(TuneInputError, match="--lanes"):
        resolve_lanes(bad, _Session({}))


def test_auto_on_a_server_without_tvm_sched_says_so():
    with pytest.raises(TuneInputError, match="tvm_sched RPC server"):
        resolve_lanes("auto", _Session({}))


@pytest.mark.parametrize("kw, message", [
    ({"lanes": "many"}, "--lanes"), ({"lanes": 0}, "--lanes"),
    ({"lanes": 2, "objective": "memory"}, "tunes latency"),
    ({"lanes": 2, "samples": 0}, "--samples"),
])
def test_tune_config_checks_lane_options(kw, message):
    from tvm_sched.tune.tuner import TuneConfig

    with pytest.raises(TuneInputError, match=message):
        TuneConfig(**kw).check()


# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model():
    from tvm_sched.tune import load_model

    return load_model(model="inception")


@pytest.fixture(scope="module")
def server():
    from tvm_sched.tune.server import EmbeddedServer

    with EmbeddedServer(lifetime=900) as srv:
        yield srv


def _config(**kw):
    from tvm_sched.tune.tuner import TuneConfig

    base = dict(lanes="auto", solvers=("list", "random-list", "gaus"), solver_budget=0.5,
                samples=32, per_solver=2, top_k=3, repeats=3, min_repeat_ms=1.0)
    base.update(kw)
    return TuneConfig(**base)


@pytest.mark.integration
@pytest.mark.rpc
def test_lanes_through_a_loopback_server_resume_and_export(small_model, server, tmp_path):
    import tvm

    from tvm_sched import runtime
    from tvm_sched.runtime.builder import LaneKernels
    from tvm_sched.runtime.cores import lanes_for, num_cores
    from tvm_sched.tune import ServerDevices, tune

    runner = ServerDevices(server.address)
    res = tune(small_model, "llvm", runner, tmp_path, _config())
    # auto: the lanes the server's cores offer at connect (same machine here), as measured
    (cond,) = res.info["conditions"].values()
    assert cond["cores"] == num_cores() and len(cond["efficiency"]) == num_cores()
    assert res.lanes == lanes_for(cond) and 1 <= res.lanes <= num_cores()
    assert "Conditions on" in (tmp_path / "report.md").read_text()
    names = {r.candidate for r in res.records}
    assert {"relax-vm", "executor m=1"} <= names
    assert "list" in names or any(a == "list" for r in res.records for a in r.aliases)
    bad = [(r.candidate, r.error) for r in res.records if r.error]
    assert not bad, bad
    assert all(len(r.samples) == 3 and len(r.anchor_samples) == 3 for r in res.records)
    assert res.best is not None
    target_key = str(tvm.target.Target("llvm"))
    assert all(r.target == target_key for r in res.records)  # the full target string

    # kernel durations were measured on the device before the solvers ran
    state = json.loads((tmp_path / "lane_state.json").read_text())
    assert state["kernel_times"] and all(v > 0 for v in state["kernel_times"].values())
    assert {"report.md", "summary.json", "best.so", "lane_records.jsonl"} <= {
        p.name for p in tmp_path.iterdir()}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pick"] == res.best.candidate
    assert {row["solver"] for row in summary["solvers"]} >= {"list", "random-list", "gaus"}

    # the exported lane plan loads and computes what the Relax VM computes
    assert (tmp_path / "best_lanes.tar").exists()
    k = LaneKernels(small_model.mod, "llvm", params=small_model.params)
    want = k.reference(*small_model.inputs)
    with runtime.load(tmp_path / "best_lanes.tar", "cpu", allow_oversubscribe=True) as mod:
        got = mod(*small_model.inputs)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)

    # resume: nothing measured, profiled or proposed again
    lines = (tmp_path / "lane_records.jsonl").read_text().count("\n")
    # (the same lane count: auto follows the load, which may change between two runs)
    again = tune(small_model, "llvm", ServerDevices(server.address), tmp_path,
                 _config(lanes=res.lanes))
    assert again.measured_now == 0
    assert (tmp_path / "lane_records.jsonl").read_text().count("\n") == lines
    assert again.best.candidate == res.best.candidate
    # ... nor compiled: the kernel library of the first run is loaded from the work dir
    assert not res.info["kernels_from_work_dir"] and again.info["kernels_from_work_dir"]
    assert len(list(tmp_path.glob("kernels-*.so"))) == 1

    # a memory budget that nothing fits (the VM included) is refused before measuring
    with pytest.raises(TuneInputError, match="nothing fits the memory budget of 64 B"):
        tune(small_model, "llvm", ServerDevices(server.address), tmp_path / "tight",
             _config(memory_budget=64))
    assert not (tmp_path / "tight" / "lane_records.jsonl").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_at_small_size(tmp_path, capsys):
    from tvm_sched.cli import main

    rc = main(["tune", "--model", "darts", "--lanes", "auto", "--quiet", "--solver-budget",
               "0.5", "--samples", "32", "--repeats", "3", "--min-repeat-ms", "1",
               "--work-dir", str(tmp_path / "demo")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "speed-up over the Relax VM" in out
    for solver in ("gaus", "cpsat", "list", "random-list"):
        assert solver in out
    assert (tmp_path / "demo" / "report.md").exists()


@pytest.mark.parametrize("argv, message", [
    (["--lanes", "zero"], "--lanes must be 'auto' or an integer >= 1"),
    (["--lanes", "2", "--objective", "memory"], "--lanes tunes latency"),
    (["--lanes", "auto", "--samples", "0"], "--samples and --per-solver must be >= 1"),
    (["--lanes", "auto", "--solvers", "nope"], "nope"),
])
def test_bad_lane_flags_are_one_line_exit_2_nothing_written(argv, message, tmp_path, capsys):
    from tvm_sched.cli import main

    work = tmp_path / "w"
    rc = main(["tune", "--model", "inception", "--work-dir", str(work), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not work.exists()


def test_a_torn_kernel_library_is_not_loaded(tmp_path, caplog):
    # (a fresh path: the dynamic loader hands back a library already loaded under the same
    # name, so a torn file can only be seen by a new process or under a new name)
    from tvm_sched.runtime.builder import LaneKernels

    torn = tmp_path / "kernels-torn.so"
    torn.write_bytes(b"\x7fELF torn")
    assert LaneKernels.load_executable(torn) is None
    assert "does not load" in caplog.text
    assert LaneKernels.load_executable(tmp_path / "missing.so") is None


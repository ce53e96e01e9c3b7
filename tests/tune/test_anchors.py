"""Anchors (PyTorch eager, ONNX Runtime) measured beside the Relax VM: specs, the device
functions, the pick rule that never picks them, and a lane tuning run that reports them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.anchors import ANCHORS, anchor_specs
from tvm_sched.tune.objective import LaneCandidate, LaneObjective, MeasureResult, TuneRecord


def test_specs_follow_the_source(tmp_path):
    zoo = anchor_specs({"zoo": "darts", "size": "small", "seed": 3}, tmp_path / "m.onnx")
    assert set(zoo) == set(ANCHORS)
    assert zoo["pytorch-1t"] == {"framework": "torch", "mode": "1t", "zoo": "darts",
                                 "size": "small", "seed": 3}
    assert zoo["onnxruntime"] == {"framework": "ort", "mode": "sequential", "file": "m.onnx"}
    assert zoo["onnxruntime-parallel"]["mode"] == "parallel"
    relax = anchor_specs({}, None)
    assert all("unavailable" in s for s in relax.values())
    onnx_only = anchor_specs({"onnx": "/x/m.onnx"}, tmp_path / "m.onnx")
    assert "unavailable" in onnx_only["pytorch"] and onnx_only["onnxruntime"]["file"] == "m.onnx"


def test_anchors_are_told_apart_and_never_picked():
    a = LaneCandidate("pytorch", "anchor", "anchor", 1, baseline=True)
    b = LaneCandidate("onnxruntime", "anchor", "anchor", 1, baseline=True)
    assert a.hash != b.hash
    vm = LaneCandidate("relax-vm", "baseline", "vm", 1, baseline=True)

    def rec(c, lat, anchor_lat=1.0):
        m = MeasureResult(c.hash, "fake", samples=[lat * (1 + d) for d in (-.01, 0, .01)],
                          anchor=[anchor_lat * (1 + d) for d in (-.01, 0, .01)])
        return TuneRecord.make(c, m, model="m", model_hash="h", target="llvm",
                               device_key="local")

    records = [rec(vm, 1.0), rec(a, 0.1), rec(b, 0.2)]
    pick, fastest = LaneObjective().pick(records, None)
    assert pick.kind == "vm" and fastest.kind == "vm"


def test_unknown_anchor_is_a_usage_error():
    from tvm_sched.tune import TuneConfig

    with pytest.raises(TuneInputError, match="unknown anchor"):
        TuneConfig(lanes=2, anchors=("tensorflow",)).check()


@pytest.mark.integration
def test_device_functions_run_torch_on_the_device_session():
    """In-process: the torch anchor rebuilds the zoo model and matches torch's reference."""
    import tvm
    import tvm_ffi

    from tvm_sched import zoo
    from tvm_sched.tune import anchors

    anchors.register()
    spec = anchor_specs({"zoo": "inception", "size": "small", "seed": 0}, None)["pytorch-1t"]
    assert tvm_ffi.get_global_func(anchors.LOAD)("t1", json.dumps(spec)) == ""
    imp = zoo.load("inception", size="small", seed=0)
    out = tvm_ffi.get_global_func(anchors.RUN)("t1", 0,
                                               *[tvm.runtime.tensor(x) for x in imp.inputs])
    np.testing.assert_allclose(out.numpy(), imp.reference[0], rtol=1e-5, atol=1e-6)
    assert 0 < tvm_ffi.get_global_func(anchors.TIME)("t1", 2) < 10
    bad = dict(spec, zoo="no-such-model")
    assert "could not load" in tvm_ffi.get_global_func(anchors.LOAD)("t2", json.dumps(bad))
    anchors.forget()


@pytest.mark.integration
@pytest.mark.slow
def test_lane_tuning_reports_the_anchors_beside_the_pick(tmp_path):
    pytest.importorskip("onnxruntime")
    from tvm_sched.tune import TuneConfig, load_model, tune
    from tvm_sched.tune.devices import create_devices
    from tvm_sched.tune.lane_report import anchor_table

    model = load_model(model="inception", size="small")
    cfg = TuneConfig(lanes=2, anchors=tuple(ANCHORS), repeats=2, top_k=1, samples=16,
                     solvers=("list",), min_repeat_ms=1.0)
    res = tune(model, "llvm", create_devices("local"), tmp_path, cfg)
    got = {r.candidate: r for r in res.records if r.kind == "anchor"}
    assert set(got) == set(ANCHORS)
    for r in got.values():  # every anchor ran and matched the VM's outputs
        assert r.ok, r.error
    assert res.best.kind != "anchor"
    rows = {row["name"]: row for row in anchor_table(res)}
    assert rows["relax-vm"]["median_ms"] > 0 and rows["onnxruntime"]["pick_speedup"] > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {a["name"] for a in summary["anchors"]} >= set(ANCHORS)
    assert "ONNX Runtime" in (tmp_path / "report.md").read_text()
    assert (tmp_path / f"anchor-{model.hash}.onnx").exists()


def test_the_kernels_line_says_which_budget_leaves_kernels_untuned():
    from tvm_sched.tune.lane_report import kernels_line

    def info(trials: int, tasks: int = 53) -> dict:
        dbs = {t: {"trials": trials, "tasks": tasks, "trials_now": trials, "seconds": 1.0}
               for t in ("1", "2")}
        return {"kernel_tuning": {"cpu": "znver5", "cpu_source": "device", "databases": dbs},
                "threads_per_lane": 1, "cores": 2}

    line = kernels_line(info(16))
    assert "CPU znver5" in line and "37 kernels keep TVM's default schedule" in line
    line = kernels_line(info(64))
    assert "every kernel has a measured schedule" in line and "default schedule" not in line
    assert "budget" not in kernels_line(info(8 * 53))
    assert "untuned kernels (--kernel-trials 0)" in kernels_line(info(0))

"""The public API: export/load, RPC, clear errors for bad input and bad plans."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tvm_sched.errors import CycleError, ExtractionError, InvalidScheduleError
from tvm_sched.runtime import LaneInputError, LaneModule, LanePlan, load, plan_module

pytestmark = pytest.mark.integration


def test_export_and_load_round_trip(compiled, random_schedule, tmp_path):
    kernels, inputs, ref = compiled("transformer")
    sched = random_schedule(kernels.graph, 2, np.random.default_rng(3))
    with kernels.module(sched, engine="python", allow_oversubscribe=True) as lm:
        path = lm.export(tmp_path / "model.tar")
        with load(path, "cpu", engine="python", allow_oversubscribe=True) as back:
            assert back.plan == lm.plan
            for a, b in zip(back(*inputs), ref, strict=True):
                assert np.array_equal(a, b)
            again = back.export(tmp_path / "again.tar")  # a loaded module re-exports
        with load(again, allow_oversubscribe=True, engine="python") as third:
            assert np.array_equal(third(*inputs)[0], ref[0])


def test_load_rejects_what_is_not_an_exported_module(tmp_path):
    bad = tmp_path / "x.tar"
    bad.write_text("not a tar")
    with pytest.raises(InvalidScheduleError, match="not an exported lane module"):
        load(bad)
    import tarfile

    with tarfile.open(tmp_path / "y.tar", "w") as tar:
        p = tmp_path / "plan.json"
        p.write_text("{}")
        tar.add(str(p), arcname="plan.json")
    with pytest.raises(InvalidScheduleError, match="missing"):
        load(tmp_path / "y.tar")


def test_wrong_inputs_are_named(compiled):
    kernels, inputs, _ = compiled("inception")
    with kernels.module(engine="python") as lm:
        x = inputs[0]
        with pytest.raises(LaneInputError, match="2 inputs given; the module takes 1"):
            lm(x, x)
        with pytest.raises(LaneInputError, match=r"input 0 is float32\[1, 3, 16, 16\]"):
            lm(np.zeros((1, 3, 16, 16), np.float32))
        with pytest.raises(LaneInputError, match=r"input 0 is float64"):
            lm(x.astype(np.float64))
        import tvm

        out = lm(tvm.runtime.tensor(x))  # TVM tensors are accepted too
        assert out[0].shape == (1, 10)


def test_unknown_kernel_and_cyclic_plan(compiled):
    kernels, _, _ = compiled("inception")
    plan = kernels.plan(None)
    d = plan.to_dict()
    d["kernels"][0] = "no_such_kernel"
    with pytest.raises(InvalidScheduleError, match="no_such_kernel"):
        LaneModule(LanePlan.from_dict(d), kernels.exe.mod, "cpu", engine="python",
                   constants=kernels.constants)
    d = json.loads(plan.to_json())
    d["lanes"] = [d["lanes"][0][:5], d["lanes"][0][5:]]
    d["waits"][0] = [6]  # step 0 waits for a step that comes after its own lane's successor
    d["waits"][5] = [1]
    with pytest.raises(CycleError, match="cycle"):
        LanePlan.from_dict(d)


def test_more_lanes_than_cores_and_non_cpu_targets(monkeypatch):
    import tvm_sched.runtime.cores as cores
    from tvm_sched import runtime
    from tvm_sched.tune import load_model

    monkeypatch.setattr(cores, "usable_cores", lambda: [0])
    model = load_model(model="inception")
    with pytest.raises(InvalidScheduleError, match="2 lanes x 1 thread.*may use 1"):
        runtime.build(model.mod, lanes=2, params=model.params)
    with pytest.raises(InvalidScheduleError, match="CPU"):
        runtime.build(model.mod, "cuda", params=model.params)
    with pytest.raises(ValueError, match="unknown engine"):
        runtime.build(model.mod, params=model.params, engine="fast")


def test_a_binding_the_runtime_cannot_run_is_named():
    import tvm
    from tvm import relax
    from tvm.script import relax as R

    from tvm_sched.runtime import plan_module
    from tvm_sched.schedule import Schedule

    @tvm.script.ir_module
    class Mod:
        @R.function
        def main(x: R.Tensor((4,), "float32")) -> R.Tensor((4,), "float32"):
            with R.dataflow():
                y = R.add(x, x)
                z = R.call_dps_packed("my_ext", (y,), out_ty=R.Tensor((4,), "float32"))
                R.output(z)
            return z

    mod = relax.transform.LegalizeOps()(Mod)
    with pytest.raises(ExtractionError, match=r"binding 1 \(z\) calls relax.call_dps_packed"):
        plan_module(mod, Schedule(order=(0, 1)))


@pytest.mark.rpc
def test_time_and_run_over_a_loopback_rpc_server(compiled, random_schedule, tmp_path):
    from tvm import rpc

    from tvm_sched.runtime.rpc import run_remote, time_remote
    from tvm_sched.tune.server import EmbeddedServer

    kernels, inputs, ref = compiled("inception")
    sched = random_schedule(kernels.graph, 2, np.random.default_rng(11))
    with kernels.module(sched, engine="python", allow_oversubscribe=True) as lm, \
            EmbeddedServer(lifetime=300) as server:
        session = rpc.connect(*server.address)
        outs = run_remote(session, lm, inputs)
        for a, b in zip(outs, ref, strict=True):
            assert np.array_equal(a, b)
        seconds = time_remote(session, lm, number=2, repeat=2, allow_oversubscribe=True)
        assert 0 < seconds < 10


@pytest.mark.slow
def test_metaschedule_tuned_kernels_run_on_lanes(tmp_path):
    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm.script import relax as R

    from tvm_sched import runtime
    from tvm_sched.relax.frontend import prepare

    @tvm.script.ir_module
    class Tiny:
        @R.function
        def main(x: R.Tensor((16, 32), "float32"), w1: R.Tensor((32, 32), "float32"),
                 w2: R.Tensor((32, 32), "float32")) -> R.Tensor((16, 32), "float32"):
            R.func_attr({"num_input": 1})
            with R.dataflow():
                a = R.nn.relu(R.matmul(x, w1))
                b = R.nn.relu(R.matmul(x, w2))
                c = R.add(a, b)
                R.output(c)
            return c

    mod = prepare(Tiny)
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    work = str(tmp_path / "ms")
    # generous time-outs: the builder and runner workers import TVM on a busy machine
    builder = ms.builder.LocalBuilder(max_workers=1, timeout_sec=300)
    runner = ms.runner.LocalRunner(timeout_sec=300, evaluator_config=ms.runner.EvaluatorConfig(
        number=1, repeat=1, min_repeat_ms=0))
    ms.relax_integration.tune_relax(mod, {}, target, work, max_trials_global=4,
                                    num_trials_per_iter=2, builder=builder, runner=runner,
                                    cost_model="random",
                                    seed=0)
    db = ms.database.JSONDatabase(work_dir=work)
    rng = np.random.default_rng(0)
    x, w1, w2 = (rng.standard_normal(s).astype("float32") for s in ((16, 32), (32, 32), (32, 32)))
    with runtime.build(mod, target, lanes=2, params=[w1, w2], database=db, engine="python",
                       allow_oversubscribe=True, budget=1.0) as lm:
        scheduled = [gv.name_hint for gv, f in lm.kernels.mod.functions.items()
                     if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None
                     and any(str(k).endswith("is_scheduled") for k in f.attrs.keys())]
        assert scheduled, "no kernel came from the database"
        assert lm.plan.num_lanes == 2
        out = lm(x)[0]
        assert np.array_equal(out, lm.kernels.reference(x)[0])
        np.testing.assert_allclose(out, np.maximum(x @ w1, 0) + np.maximum(x @ w2, 0),
                                   rtol=1e-4, atol=1e-4)


def test_each_lane_sizes_its_own_tvm_thread_pool():
    import tvm

    from tvm_sched.runtime import PythonEngine

    num_threads = tvm.get_global_func("runtime.NumThreads")
    seen = {}

    def record(lane):
        seen[lane] = num_threads()

    with PythonEngine([record], [(0, [0])], [[0]], [[]], threads_per_lane=2,
                      allow_oversubscribe=True) as eng:
        eng.run()
    with PythonEngine([record], [(0, [1]), (0, [2])], [[0], [1]], [[], []],
                      threads_per_lane=1, allow_oversubscribe=True) as eng:
        eng.run()
    assert seen == {0: 2, 1: 1, 2: 1}


def test_auto_engine_says_once_when_it_falls_back(monkeypatch, caplog):
    import logging

    import tvm_sched.runtime.module as module
    from tvm_sched.runtime import native_engine as native

    monkeypatch.setattr(native, "available", lambda: False)
    monkeypatch.setattr(module, "_warned_python", False)
    with caplog.at_level(logging.WARNING, logger="tvm_sched.runtime.module"):
        for _ in range(2):
            eng = module.make_engine("auto", [print], [(0, [])], [[0]], [[]])
            assert eng.kind == "python"
            eng.close()
    assert sum("Python engine" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(ValueError, match="native lane engine is not built"):
        module.make_engine("native", [print], [(0, [])], [[0]], [[]])


def test_plan_from_module_and_threads_per_lane(compiled):
    kernels, inputs, ref = compiled("inception")
    plan = plan_module(kernels.mod, None, graph=kernels.graph, threads_per_lane=2)
    assert plan.threads_per_lane == 2 and plan.num_lanes == 1
    with kernels.module(None, threads_per_lane=2, engine="python",
                        allow_oversubscribe=True) as lm:
        assert lm.plan.threads_per_lane == 2
        assert all(np.array_equal(a, b) for a, b in zip(lm(*inputs), ref, strict=True))


@pytest.mark.parametrize("name", ["LaneError", "LaneInputError"])
def test_lane_errors_are_tvm_sched_errors_and_cross_tvm_ffi_as_themselves(name):
    # they live in tvm_sched.errors with the rest, so importing tvm_sched.relax registers them
    # with tvm-ffi: raised inside a packed function, they come back as themselves
    import tvm_ffi

    import tvm_sched.relax  # noqa: F401 - registers the errors
    from tvm_sched import errors, runtime

    cls = getattr(errors, name)
    assert getattr(runtime, name) is cls and issubclass(cls, errors.TvmSchedError)

    def raise_it():
        raise cls("step 3 on lane 1 failed")

    func = f"tvm_sched.test.raise_{name}"
    tvm_ffi.register_global_func(func, raise_it, override=True)
    with pytest.raises(cls, match="step 3 on lane 1"):
        tvm_ffi.get_global_func(func)()


def test_run_step_runs_the_plan_one_kernel_at_a_time(compiled):
    kernels, inputs, ref = compiled("inception")
    with kernels.module(None, engine="python") as lm:
        lm.set_inputs(*inputs)
        lm.poison()
        times = [lm.run_step(s) for s in lm.plan.serial_order()]
        assert all(t > 0 for t in times)
        for a, b in zip(lm.outputs(), ref, strict=True):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(IndexError, match="not a step"):
            lm.run_step(len(lm.plan.steps))

"""The one lane device API (issue 19 item 5): one cores module, one set of RPC functions with the
old names as aliases, the native engine as a typed tvm-ffi object, a plan proven once per side."""

from __future__ import annotations

import pytest

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.runtime import cores, native_engine, rpc
from tvm_sched.runtime.plan import LanePlan, Step, TensorSpec


def test_one_too_many_lanes_check_for_engines_and_builder(monkeypatch):
    from tvm_sched.runtime import builder
    from tvm_sched.runtime.engine_python import PythonEngine

    monkeypatch.setattr(cores, "usable_cores", lambda: [0, 1])
    assert cores.num_cores() == 2
    assert cores.check_cores(2) is False
    assert cores.check_cores(3, allow_oversubscribe=True) is True
    with pytest.raises(InvalidScheduleError, match="threads_per_lane must be >= 1"):
        cores.check_cores(1, 0)
    message = r"3 lanes x 1 thread\(s\) need 3 cores; this process may use 2"
    with pytest.raises(InvalidScheduleError, match=message):
        PythonEngine([lambda: None], [(0, [])] * 3, [[0], [1], [2]], [[], [], []])
    with pytest.raises(InvalidScheduleError, match=message):
        builder._check_cores(3, 1, False)
    if native_engine.available():
        with pytest.raises(InvalidScheduleError, match=message):
            native_engine.NativeEngine([lambda: None], [(0, [])] * 3, [[0], [1], [2]],
                                       [[], [], []])


def test_rpc_registers_one_set_of_functions_and_the_old_names():
    import tvm_ffi

    rpc.register()
    for name in (rpc.NUM_CORES, rpc.PARALLELISM, rpc.RUN_FUNC, rpc.TIME_FUNC, rpc.TIME_RUNS,
                 rpc.TIME_STEP, rpc.TIME_STEPS, *rpc.ALIASES):
        assert tvm_ffi.get_global_func(name, allow_missing=True) is not None, name
    assert all(name.startswith("tvm_sched.runtime.") for name in rpc.ALIASES.values())
    cores_now = tvm_ffi.get_global_func("tvm_sched.tune.num_cores")()
    assert cores_now == tvm_ffi.get_global_func(rpc.NUM_CORES)() == cores.num_cores()


@pytest.mark.skipif(not native_engine.available(), reason="the native lane engine is not built")
def test_the_native_engine_is_a_typed_object():
    import tvm_ffi

    seen = []
    with native_engine.NativeEngine([tvm_ffi.convert(seen.append)], [(0, [1]), (0, [2])],
                                    [[0], [1]], [[], [0]], allow_oversubscribe=True) as engine:
        obj = engine._engine
        assert isinstance(obj, tvm_ffi.Object)
        assert obj.__tvm_ffi_type_info__.type_key == native_engine.TYPE_KEY
        assert (obj.num_lanes(), obj.num_steps(), obj.num_waits()) == (2, 2, 1)
        obj.run()
        assert seen == [1, 2] and obj.closed() is False
        assert [list(c) for c in obj.pinned_cores()] == engine.pinned_cores
    assert engine.closed and obj.closed()


def _plan(**kw) -> LanePlan:
    tensors = (TensorSpec("param", (4,), "float32", index=0),
               TensorSpec("arena", (4,), "float32", offset=0, node=0),
               TensorSpec("const", (4,), "float32", index=0))
    d = dict(kernels=("k0",), tensors=tensors, steps=(Step(0, "a", 0, (0, 2, 1)),),
             lanes=((0,),), waits=((),), outputs=(1,), num_input=1, num_params=1,
             arena_bytes=64)
    d.update(kw)
    return LanePlan(**d)


def test_a_plan_is_proven_once_and_constants_still_checked(monkeypatch):
    plan = _plan()
    calls = []
    real = LanePlan._check_memory
    monkeypatch.setattr(LanePlan, "_check_memory", lambda self, hb: calls.append(1) or
                        real(self, hb))
    plan.validate()
    plan.validate(num_consts=1)
    plan.with_threads(2).validate(num_consts=1)
    assert len(calls) == 1  # the full proof ran once
    with pytest.raises(InvalidScheduleError, match="constant 0; the module has 0 constants"):
        plan.validate(num_consts=0)
    back = LanePlan.from_json(plan.to_json())  # the other side of the wire proves it again
    assert len(calls) == 2
    back.validate(num_consts=1)
    assert len(calls) == 2
    listed = _plan(lanes=[[0]])  # a plan that could change under the proof is proven each time
    listed.validate()
    listed.validate()
    assert len(calls) == 4


def test_config_threads_gives_the_pool_the_cpus_it_needs(monkeypatch):
    """TVM's runtime.config_threadpool keeps the pool as it is when given no CPUs: the thread
    count only takes with the list, which config_threads always passes (the usable cores)."""
    import tvm

    seen = []
    real = tvm.get_global_func("runtime.config_threadpool")
    monkeypatch.setattr(tvm, "get_global_func",
                        lambda name, *a, **k: (lambda *args: seen.append(args))
                        if name == "runtime.config_threadpool" else real(name, *a, **k))
    monkeypatch.setattr(cores, "usable_cores", lambda: [0, 3])
    assert rpc.config_threads(1) == 1
    assert seen == [(-3, 1, ["0", "3"])]
    assert rpc.CONFIG_THREADS in rpc._FUNCS

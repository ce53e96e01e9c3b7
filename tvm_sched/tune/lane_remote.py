"""The device side of lane tuning: global functions the tvm_sched RPC server registers.

Contract
--------
:func:`register` (called by :mod:`tvm_sched.tune.server` at start, and by the tuner itself for
in-process sessions) registers in the calling process:

- ``tvm_sched.tune.num_cores()`` -> the CPU cores this process may run on (``--lanes auto``);
- ``tvm_sched.tune.lane_run(path, index, *inputs)`` -> output ``index`` of one run of the exported
  lane module at ``path`` on ``inputs`` (the inputs stay set for later timings);
- ``tvm_sched.tune.lane_time(path, number)`` -> seconds of one run, averaged over ``number``
  back-to-back runs on the inputs last set (no warm-up: the tuner warms up and interleaves);
- ``tvm_sched.tune.lane_step(path, position)`` -> seconds of one call of the kernel at
  ``position`` of the (one-lane) module's lane, run on the tensors as they are now. Called for
  positions 0, 1, 2, ... in turn after a ``lane_run`` set the inputs, it is the module's own run,
  one kernel at a time: every kernel reads the bytes its producers just wrote, never bytes a
  later step has since reused (the arena), so the durations are those of a real run. The client
  drives the positions (:meth:`tvm_sched.tune.lane_runner.LaneRunner.profile`, about 25 µs per
  call on a local server), so a device that dies names the kernel that was running.

``path`` is a name in the RPC server's work directory (as ``session.upload`` left it) or an
absolute path. Loaded modules are cached per path and modification time in the serving process
and closed when a newer file replaces them or :func:`forget` is called.
"""

from __future__ import annotations

import os
import time

__all__ = ["register", "NUM_CORES", "LANE_RUN", "LANE_TIME", "LANE_STEP", "num_cores",
           "forget"]

NUM_CORES = "tvm_sched.tune.num_cores"
LANE_RUN = "tvm_sched.tune.lane_run"
LANE_TIME = "tvm_sched.tune.lane_time"
LANE_STEP = "tvm_sched.tune.lane_step"

_CACHE: dict[str, tuple[float, object]] = {}
#: id(module) -> (module, per lane position (kernel, arguments)) for :func:`_lane_step`
_STEP_CALLS: dict[int, tuple[object, list]] = {}


def num_cores() -> int:
    """Cores this process may use (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _resolve(path: str) -> str:
    if os.path.isabs(path):
        return path
    import tvm

    workpath = tvm.get_global_func("tvm.rpc.server.workpath", allow_missing=True)
    return workpath(path) if workpath is not None else os.path.abspath(path)


def _module(path: str):
    from tvm_sched.runtime.module import load

    full = _resolve(str(path))
    mtime = os.path.getmtime(full)
    hit = _CACHE.get(full)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    if hit is not None:
        _STEP_CALLS.pop(id(hit[1]), None)
        hit[1].close()
    # more lanes than cores is the user's explicit choice (--lanes M); the plan says how many
    mod = load(full, "cpu", allow_oversubscribe=True)
    _CACHE[full] = (mtime, mod)
    return mod


def forget() -> None:
    """Close and drop every cached module."""
    for _, mod in _CACHE.values():
        mod.close()
    _CACHE.clear()
    _STEP_CALLS.clear()


def _lane_run(path, index, *inputs):
    import numpy as np
    import tvm

    mod = _module(str(path))
    outs = mod(*[x.numpy() if hasattr(x, "numpy") else np.asarray(x) for x in inputs])
    return tvm.runtime.tensor(outs[int(index)], tvm.cpu(0))


def _lane_time(path, number) -> float:
    mod = _module(str(path))
    n = max(1, int(number))
    t0 = time.perf_counter()
    for _ in range(n):
        mod.run()
    return (time.perf_counter() - t0) / n


def _lane_step(path, position) -> float:
    mod = _module(str(path))
    plan = mod.plan
    if plan.num_lanes != 1:
        raise ValueError(f"lane_step profiles a one-lane plan; {path} has {plan.num_lanes} lanes")
    chain = plan.lanes[0]
    p = int(position)
    if not 0 <= p < len(chain):
        raise IndexError(f"position {p} is not a step of the {len(chain)}-step lane")
    calls = _STEP_CALLS.get(id(mod))
    if calls is None or calls[0] is not mod:
        tensors = mod._tensors  # noqa: SLF001 - the module's own argument tensors
        funcs = [mod.lib.get_function(k, query_imports=True) for k in plan.kernels]
        calls = (mod, [(funcs[plan.steps[s].kernel],
                        [tensors[a] for a in plan.steps[s].args] + list(plan.steps[s].scalars))
                       for s in chain])
        _STEP_CALLS[id(mod)] = calls
    fn, args = calls[1][p]
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def register() -> None:
    """Register the functions of the module docstring in this process (idempotent)."""
    import tvm_ffi

    tvm_ffi.register_global_func(NUM_CORES, num_cores, override=True)
    tvm_ffi.register_global_func(LANE_RUN, _lane_run, override=True)
    tvm_ffi.register_global_func(LANE_TIME, _lane_time, override=True)
    tvm_ffi.register_global_func(LANE_STEP, _lane_step, override=True)

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
- ``tvm_sched.tune.lane_profile(path, number, repeat)`` -> JSON ``{kernel name: seconds}``:
  each step of the module run alone on its real arguments (the arena after one run), the median
  of ``repeat`` timings of ``number`` calls; a kernel used by several steps gets their median.

``path`` is a name in the RPC server's work directory (as ``session.upload`` left it) or an
absolute path. Loaded modules are cached per path and modification time in the serving process
and closed when a newer file replaces them or :func:`forget` is called.
"""

from __future__ import annotations

import json
import os
import statistics
import time

__all__ = ["register", "NUM_CORES", "LANE_RUN", "LANE_TIME", "LANE_PROFILE", "num_cores",
           "forget"]

NUM_CORES = "tvm_sched.tune.num_cores"
LANE_RUN = "tvm_sched.tune.lane_run"
LANE_TIME = "tvm_sched.tune.lane_time"
LANE_PROFILE = "tvm_sched.tune.lane_profile"

_CACHE: dict[str, tuple[float, object]] = {}


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


def _lane_profile(path, number, repeat) -> str:
    mod = _module(str(path))
    mod.run()  # every intermediate holds real data
    plan = mod.plan
    tensors = mod._tensors  # noqa: SLF001 - the module's own argument tensors, read only
    per_kernel: dict[str, list[float]] = {}
    n, r = max(1, int(number)), max(1, int(repeat))
    for st in plan.steps:
        name = plan.kernels[st.kernel]
        fn = mod.lib.get_function(name, query_imports=True)
        args = [tensors[a] for a in st.args] + list(st.scalars)
        fn(*args)  # warm-up
        samples = []
        for _ in range(r):
            t0 = time.perf_counter()
            for _ in range(n):
                fn(*args)
            samples.append((time.perf_counter() - t0) / n)
        per_kernel.setdefault(name, []).append(statistics.median(samples))
    return json.dumps({k: statistics.median(v) for k, v in per_kernel.items()})


def register() -> None:
    """Register the functions of the module docstring in this process (idempotent)."""
    import tvm_ffi

    tvm_ffi.register_global_func(NUM_CORES, num_cores, override=True)
    tvm_ffi.register_global_func(LANE_RUN, _lane_run, override=True)
    tvm_ffi.register_global_func(LANE_TIME, _lane_time, override=True)
    tvm_ffi.register_global_func(LANE_PROFILE, _lane_profile, override=True)

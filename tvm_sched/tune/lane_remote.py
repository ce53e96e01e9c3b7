"""The device side of lane tuning: global functions the tvm_sched RPC server registers.

Contract
--------
:func:`register` (called by :mod:`tvm_sched.tune.server` at start, and by the tuner itself for
in-process sessions) registers in the calling process:

- ``tvm_sched.tune.num_cores()`` -> the CPU cores this process may run on;
- ``tvm_sched.tune.parallelism(work_ms)`` -> JSON ``{"cores", "efficiency", "load"}``: what the
  device's cores really offer now (:func:`parallelism`; ``--lanes auto`` takes its lanes from it);
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

__all__ = ["register", "NUM_CORES", "PARALLELISM", "LANE_RUN", "LANE_TIME", "LANE_STEP",
           "num_cores", "parallelism", "lanes_for", "forget"]

NUM_CORES = "tvm_sched.tune.num_cores"
LANE_RUN = "tvm_sched.tune.lane_run"
LANE_TIME = "tvm_sched.tune.lane_time"
LANE_STEP = "tvm_sched.tune.lane_step"
PARALLELISM = "tvm_sched.tune.parallelism"

#: ``--lanes auto`` takes the most threads k whose parallel efficiency is at least this.
MIN_EFFICIENCY = 0.75

_CACHE: dict[str, tuple[float, object]] = {}


def num_cores() -> int:
    """Cores this process may use (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _rounds(threads: int, buf: bytes, count: int) -> float:
    """Wall seconds for ``threads`` threads to hash ``buf`` ``count`` times each, at once
    (SHA-256 of a large buffer runs without the GIL, so the threads really run together)."""
    import hashlib
    import threading

    def work() -> None:
        for _ in range(count):
            hashlib.sha256(buf).digest()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0


def parallelism(work_ms: float = 20.0, trials: int = 3) -> dict:
    """How much parallel work this process's cores take now.

    For k = 1 .. :func:`num_cores` threads, each thread does the same CPU-bound work (SHA-256 of
    a 1 MiB buffer, which runs without the GIL; about ``work_ms`` alone) at the same time;
    ``efficiency[k-1]`` is the time of one thread alone over the time of k at once (1.0: k
    cores free; on two cores with one busy process beside, 2 threads get about 0.67). Trials
    are interleaved over k and the median kept.

    Returns
    -------
    dict
        ``cores``, ``efficiency`` (one per k), ``load`` (the 1-minute load average).
    """
    import os as _os
    import statistics

    cores = num_cores()
    buf = _os.urandom(1 << 20)
    _rounds(1, buf, 2)  # warm-up
    per = max(_rounds(1, buf, 4) / 4, 1e-6)
    count = max(1, round(work_ms / 1e3 / per))
    samples: dict[int, list[float]] = {k: [] for k in range(1, cores + 1)}
    for _ in range(max(1, trials)):
        for k in samples:
            samples[k].append(_rounds(k, buf, count))
    alone = statistics.median(samples[1])
    eff = [min(1.0, alone / statistics.median(samples[k])) for k in samples]
    try:
        load = _os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {"cores": cores, "efficiency": eff, "load": load}


def lanes_for(probe: dict, min_efficiency: float = MIN_EFFICIENCY) -> int:
    """The most threads k whose parallel efficiency in ``probe`` (:func:`parallelism`) is at
    least ``min_efficiency`` (1 at least).

    Examples
    --------
    >>> lanes_for({"cores": 2, "efficiency": [1.0, 0.97]})
    2
    >>> lanes_for({"cores": 2, "efficiency": [1.0, 0.66]})  # a busy process on one core
    1
    """
    eff = list(probe.get("efficiency") or [1.0])
    return max(k for k in range(1, len(eff) + 1) if k == 1 or eff[k - 1] >= min_efficiency)


def _parallelism_json(work_ms=20.0) -> str:
    import json

    return json.dumps(parallelism(float(work_ms)))


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
    mod = load(full, "cpu", allow_oversubscribe=True, adaptive=False)  # the plan as planned
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


def _lane_step(path, position) -> float:
    mod = _module(str(path))
    plan = mod.plan
    if plan.num_lanes != 1:
        raise ValueError(f"lane_step profiles a one-lane plan; {path} has {plan.num_lanes} lanes")
    chain = plan.lanes[0]
    p = int(position)
    if not 0 <= p < len(chain):
        raise IndexError(f"position {p} is not a step of the {len(chain)}-step lane")
    return mod.run_step(chain[p])


def register() -> None:
    """Register the functions of the module docstring in this process (idempotent)."""
    import tvm_ffi

    tvm_ffi.register_global_func(NUM_CORES, num_cores, override=True)
    tvm_ffi.register_global_func(PARALLELISM, _parallelism_json, override=True)
    tvm_ffi.register_global_func(LANE_RUN, _lane_run, override=True)
    tvm_ffi.register_global_func(LANE_TIME, _lane_time, override=True)
    tvm_ffi.register_global_func(LANE_STEP, _lane_step, override=True)

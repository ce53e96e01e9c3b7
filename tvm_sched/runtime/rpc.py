"""Lane modules over TVM RPC: the one set of global functions a device serves, and the client.

Contract
--------
:func:`register` (called by the tvm_sched RPC server, :mod:`tvm_sched.tune.server`, at start, and
by the lane tuner itself for in-process sessions) registers in the calling process:

- ``tvm_sched.runtime.num_cores()`` -> the CPU cores this process may run on
  (:func:`tvm_sched.runtime.cores.num_cores`);
- ``tvm_sched.runtime.parallelism(work_ms)`` -> JSON ``{"cores", "efficiency", "load"}``: what
  the cores really offer now (:func:`tvm_sched.runtime.cores.parallelism`);
- ``tvm_sched.runtime.run_exported(path, index, *inputs)`` -> output ``index`` of one run of the
  exported lane module at ``path`` on ``inputs`` (tensors on the server's device); the inputs
  stay set for later timings;
- ``tvm_sched.runtime.time_exported(path, number, repeat, engine, allow_oversubscribe)`` ->
  median seconds of one run, timed by :meth:`~tvm_sched.runtime.module.LaneModule.time` (with
  warm-up) on the server's CPU;
- ``tvm_sched.runtime.time_runs(path, number)`` -> seconds of one run, averaged over ``number``
  back-to-back runs on the inputs last set (no warm-up: the lane tuner warms up and
  interleaves);
- ``tvm_sched.runtime.time_step(path, position)`` -> seconds of one call of the kernel at
  ``position`` of the (one-lane) module's lane, run on the tensors as they are now, on a thread
  whose TVM pool has the plan's threads per lane (a lane's kernels timed with a lane's
  threads, not with the session thread's pool of every core). Called for
  positions 0, 1, 2, ... in turn after a ``run_exported`` set the inputs, it is the module's own
  run, one kernel at a time: every kernel reads the bytes its producers just wrote, never bytes
  a later step has since reused (the arena), so the durations are those of a real run. The
  client drives the positions (:meth:`tvm_sched.tune.lane_runner.LaneRunner.profile`), so a
  device that dies names the kernel that was running.
- ``tvm_sched.runtime.time_steps(path, repeat)`` -> JSON ``[[seconds per position], ...]``:
  ``repeat`` runs of the one-lane module's lane, each one kernel at a time in lane order with
  every call timed, back to back on the same thread as ``time_step``. The same durations
  without a round trip between two kernels: the idle gap it leaves (the core sleeping, the
  caches and the clock going cold) put the one-lane prediction of tuned kernels at 1.09-1.20x
  the measured run (bench nasnet and resnet; 0.96-0.97x back to back). The client uses it
  first and drives ``time_step`` itself when the device is lost or a kernel fails (it then
  names the kernel).
- ``tvm_sched.runtime.config_threads(n)`` -> ``n``: the calling thread's TVM pool set to ``n``
  threads sharing every usable core (:func:`config_threads`; kernel tuning times each kernel
  with the threads it will run with).

The names the lane tuner used before (``tvm_sched.tune.num_cores``, ``parallelism``,
``lane_run``, ``lane_time``, ``lane_step``) are registered too, as aliases (:data:`ALIASES`).

``path`` is a name in the RPC server's work directory (as ``session.upload`` left it) or an
absolute path. Loaded modules are kept in one cache in the serving process, per path, engine,
oversubscription and adaptivity, and closed when a newer file replaces them or :func:`forget`
is called; so a timing after a run reuses the lane threads. The module runs its plan as
planned (``adaptive=False``) and may have more lanes than the server's cores (the plan's lane
count is the client's explicit choice), except through ``time_exported``, which loads it as
:func:`~tvm_sched.runtime.module.load` does by default (adaptive) with the caller's engine and
oversubscription.
Errors reach the client as TVM RPC errors carrying the message.

The client helpers :func:`time_remote` and :func:`run_remote` upload a module (a
:class:`~tvm_sched.runtime.module.LaneModule` is exported first) and call the functions.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tvm_sched.runtime.cores import num_cores, parallelism

__all__ = ["register", "forget", "time_remote", "run_remote", "NUM_CORES", "PARALLELISM",
           "RUN_FUNC", "TIME_FUNC", "TIME_RUNS", "TIME_STEP", "TIME_STEPS", "ALIASES",
           "resolve_path",
           "CONFIG_THREADS", "config_threads"]

NUM_CORES = "tvm_sched.runtime.num_cores"
PARALLELISM = "tvm_sched.runtime.parallelism"
RUN_FUNC = "tvm_sched.runtime.run_exported"
TIME_FUNC = "tvm_sched.runtime.time_exported"
TIME_RUNS = "tvm_sched.runtime.time_runs"
TIME_STEP = "tvm_sched.runtime.time_step"
TIME_STEPS = "tvm_sched.runtime.time_steps"
CONFIG_THREADS = "tvm_sched.runtime.config_threads"

#: Older names of the same functions (registered as well): old name -> name.
ALIASES = {
    "tvm_sched.tune.num_cores": NUM_CORES,
    "tvm_sched.tune.parallelism": PARALLELISM,
    "tvm_sched.tune.lane_run": RUN_FUNC,
    "tvm_sched.tune.lane_time": TIME_RUNS,
    "tvm_sched.tune.lane_step": TIME_STEP,
}

# (full path, engine, allow_oversubscribe, adaptive) -> (modification time, LaneModule)
_CACHE: dict[tuple[str, str, bool, bool], tuple[float, object]] = {}


def resolve_path(path: str) -> str:
    """A file the client uploaded: ``path`` in the RPC server's work directory (an absolute
    path as given; in-process, relative to the current directory).

    Parameters
    ----------
    path
        The name ``session.upload`` gave, or an absolute path.

    Returns
    -------
    str
        The absolute path.
    """
    if os.path.isabs(path):
        return path
    import tvm

    workpath = tvm.get_global_func("tvm.rpc.server.workpath", allow_missing=True)
    return workpath(path) if workpath is not None else os.path.abspath(path)


def _module(path, engine: str = "auto", allow_oversubscribe: bool = True,
            adaptive: bool = False):
    """The loaded module at ``path`` from the cache (loaded again when the file changed)."""
    from tvm_sched.runtime.module import load

    full = resolve_path(str(path))
    mtime = os.path.getmtime(full)
    key = (full, str(engine), bool(allow_oversubscribe), bool(adaptive))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    if hit is not None:
        hit[1].close()
    mod = load(full, "cpu", engine=key[1], allow_oversubscribe=key[2], adaptive=key[3])
    _CACHE[key] = (mtime, mod)
    return mod


def forget() -> None:
    """Close and drop every cached module."""
    for _, mod in _CACHE.values():
        mod.close()
    _CACHE.clear()


def _parallelism_json(work_ms=20.0) -> str:
    return json.dumps(parallelism(float(work_ms)))


def _run_exported(path, index, *inputs):
    import tvm

    mod = _module(path)
    outs = mod(*[x.numpy() if hasattr(x, "numpy") else np.asarray(x) for x in inputs])
    return tvm.runtime.tensor(outs[int(index)], tvm.cpu(0))


def _time_exported(path, number, repeat, engine="auto", allow_oversubscribe=True) -> float:
    mod = _module(path, str(engine), bool(allow_oversubscribe), adaptive=True)
    return float(mod.time(int(number), int(repeat)))


def _time_runs(path, number) -> float:
    mod = _module(path)
    n = max(1, int(number))
    t0 = time.perf_counter()
    for _ in range(n):
        mod.run()
    return (time.perf_counter() - t0) / n


#: threads per lane -> the one thread that times steps with a TVM pool of that many threads
_STEP_THREADS: dict[int, ThreadPoolExecutor] = {}


def _step_thread(threads: int) -> ThreadPoolExecutor:
    """The thread that times the steps of plans with ``threads`` threads per lane: its TVM pool
    is sized once, when it starts (:func:`config_threads`), and never again.

    TVM's pool is per calling thread. The session's own thread has a pool of every core (the
    VM's), which timed the tuned one-thread kernels of a lane on two threads (bench models: the
    one-lane prediction at 0.52-0.86 of the measured plan). Sizing that pool down to a lane's
    threads and back for the profile was tried first. In both runs with it, the VM and ONNX
    Runtime then ran 2.2x slower for the rest of the session (bench nasnet, tuned kernels), and
    not in a run without it. So the session thread's pool is left alone.
    """
    ex = _STEP_THREADS.get(threads)
    if ex is None:
        ex = _STEP_THREADS[threads] = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"tvm-sched-step-{threads}t",
            initializer=config_threads, initargs=(threads,))
    return ex


def _one_lane(path, func: str):
    """The loaded one-lane module at ``path`` and its step thread (``func`` names the caller in
    the error for a plan of several lanes)."""
    mod = _module(path)
    plan = mod.plan
    if plan.num_lanes != 1:
        raise ValueError(f"{func} profiles a one-lane plan; {path} has {plan.num_lanes} lanes")
    threads = max(1, int(getattr(plan, "threads_per_lane", 1)))
    return mod, plan.lanes[0], _step_thread(threads)


def _time_step(path, position) -> float:
    mod, chain, thread = _one_lane(path, "time_step")
    p = int(position)
    if not 0 <= p < len(chain):
        raise IndexError(f"position {p} is not a step of the {len(chain)}-step lane")
    return thread.submit(mod.run_step, chain[p]).result()


def _time_steps(path, repeat) -> str:
    mod, chain, thread = _one_lane(path, "time_steps")

    def runs() -> list[list[float]]:
        return [[mod.run_step(s) for s in chain] for _ in range(max(1, int(repeat)))]

    return json.dumps(thread.submit(runs).result())


def config_threads(n: int) -> int:
    """Set the calling thread's TVM CPU pool to ``n`` threads that share every usable core.

    TVM's ``runtime.config_threadpool`` ignores the thread count unless it is given the CPUs
    (an empty list keeps the pool as it is), and its default pool takes half the x86 cores.

    Parameters
    ----------
    n
        Threads.

    Returns
    -------
    int
        ``n``.
    """
    import tvm

    from tvm_sched.runtime.cores import usable_cores

    share_all = -3  # ThreadGroup::kSpecifyThreadShareAllCore
    tvm.get_global_func("runtime.config_threadpool")(share_all, int(n),
                                                     [str(c) for c in usable_cores()])
    return int(n)


_FUNCS = {NUM_CORES: num_cores, PARALLELISM: _parallelism_json, RUN_FUNC: _run_exported,
          TIME_FUNC: _time_exported, TIME_RUNS: _time_runs, TIME_STEP: _time_step,
          TIME_STEPS: _time_steps,
          CONFIG_THREADS: config_threads}


def register() -> None:
    """Register the functions of the module docstring, and their :data:`ALIASES`, in this
    process (idempotent)."""
    import tvm_ffi

    for name, func in _FUNCS.items():
        tvm_ffi.register_global_func(name, func, override=True)
    for old, name in ALIASES.items():
        tvm_ffi.register_global_func(old, _FUNCS[name], override=True)


def _upload(session, module, name: str) -> str:
    if isinstance(module, (str, Path)):
        session.upload(str(module), name)
        return name
    with tempfile.TemporaryDirectory(prefix="tvm_sched_lanes_") as tmp:
        path = module.export(Path(tmp) / name)
        session.upload(str(path), name)
    return name


def time_remote(session, module, *, number: int = 10, repeat: int = 5, engine: str = "auto",
                allow_oversubscribe: bool = False, name: str = "tvm_sched_lanes.tar") -> float:
    """Upload ``module`` (a LaneModule or an exported file) and time it on the server.

    Parameters
    ----------
    session
        A TVM RPC session to a server that ran :func:`register`.
    module
        A :class:`~tvm_sched.runtime.module.LaneModule` (exported first) or the path of an
        exported one.
    number, repeat
        As for :meth:`~tvm_sched.runtime.module.LaneModule.time`.
    engine, allow_oversubscribe
        How the server loads the module.
    name
        The file name in the server's work directory.

    Returns
    -------
    float
        Median seconds of one run on the server's CPU.
    """
    name = _upload(session, module, name)
    func = session.get_function(TIME_FUNC)
    return float(func(name, number, repeat, engine, allow_oversubscribe))


def run_remote(session, module, inputs: Sequence, *, num_outputs: int | None = None,
               name: str = "tvm_sched_lanes.tar") -> list[np.ndarray]:
    """Upload ``module`` and run it once on the server on ``inputs``; the outputs as numpy.

    ``num_outputs`` defaults to the module's (a :class:`LaneModule` knows it).

    Parameters
    ----------
    session
        A TVM RPC session to a server that ran :func:`register`.
    module
        A :class:`~tvm_sched.runtime.module.LaneModule` or the path of an exported one.
    inputs
        Array-likes, one per input of the module.
    num_outputs
        Outputs to fetch; required when ``module`` is a path.
    name
        The file name in the server's work directory.

    Returns
    -------
    list of numpy.ndarray
        The outputs, copied back from the server.
    """
    import tvm

    if num_outputs is None:
        num_outputs = len(module.plan.outputs)
    name = _upload(session, module, name)
    func = session.get_function(RUN_FUNC)
    dev = session.cpu(0)
    args = [tvm.runtime.tensor(np.asarray(x), dev) for x in inputs]
    return [func(name, k, *args).numpy() for k in range(num_outputs)]

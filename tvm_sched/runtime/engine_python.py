"""The Python reference lane engine: one persistent thread per lane, one event per step.

Contract (shared with the native engine, :mod:`tvm_sched.runtime.native_engine`)
--------------------------------------------------------------------------------
``PythonEngine(funcs, steps, lanes, waits, *, threads_per_lane=1, pin=True,
allow_oversubscribe=False)``

- ``funcs``: callables (``tvm_ffi.Function`` kernels); ``steps``: ``(func_index, args)`` with
  ``args`` a list of ``tvm.runtime.Tensor`` or ints, called as ``funcs[i](*args)``;
  ``lanes``: per lane, step ids in execution order; ``waits``: per step, step ids on *other*
  lanes that must finish before it starts.
- Construction validates everything (each step on exactly one lane, ids in range, no wait on
  the own lane, lane orders and waits acyclic, no more lanes than usable cores unless
  ``allow_oversubscribe``: :func:`~tvm_sched.runtime.cores.check_cores`) and raises
  :class:`~tvm_sched.errors.InvalidScheduleError` or :class:`~tvm_sched.errors.CycleError`;
  an engine that exists cannot deadlock.
- ``run()`` runs every lane once, concurrently, and blocks until all are done. A kernel that
  raises stops every lane (lanes waiting on an event are woken and give up) and ``run`` raises
  :class:`LaneError` naming the step, its lane and the cause. The engine stays usable.
- ``close()`` ends and joins the lane threads (also on ``with`` exit and garbage collection).

Threads: lane ``k`` is a daemon thread created once and reused by every ``run``. On start it
sizes its own TVM CPU thread pool (``runtime.config_threadpool``; TVM's pool is thread-local) to
``threads_per_lane`` and, with ``pin``, pins itself and that pool to cores ``k*t .. k*t+t-1`` of
the cores this process may use (skipped silently where the OS does not allow it or there are too
few cores). The pool is sized only when TVM is imported (kernels are TVM functions then).
tvm-ffi releases the GIL during a kernel call, so lanes run kernels in parallel; the Python
between calls (an event check and a call, a few µs) is serialised by the GIL.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from tvm_sched.errors import CycleError, InvalidScheduleError, LaneError
from tvm_sched.graph.algorithms import find_cycle, kahn_lists
from tvm_sched.runtime.cores import check_cores, lane_cores, usable_cores

__all__ = ["PythonEngine", "LaneError", "check_lanes"]


def check_lanes(num_steps: int, lanes: Sequence[Sequence[int]], waits: Sequence[Sequence[int]],
                *, threads_per_lane: int = 1, allow_oversubscribe: bool = False,
                names: Sequence[str] | None = None) -> list[int]:
    """Validate lanes and waits (see the module docstring); return a topological order of steps.

    Parameters
    ----------
    num_steps
        Number of steps; every one must be on exactly one lane.
    lanes
        Per lane, its step ids in run order.
    waits
        Per step, the steps of other lanes it waits for.
    threads_per_lane
        Cores each lane needs (at least 1).
    allow_oversubscribe
        Allow more lane threads than usable cores.
    names
        Step names for the error messages.

    Returns
    -------
    list of int
        A topological order of the steps under the lane orders and waits.

    Raises
    ------
    InvalidScheduleError
        A step on no lane or on two, an id out of range, a wait on the own lane, too many lanes.
    CycleError
        The lane orders and waits form a cycle (its steps are named).
    """
    def name(s: int) -> str:
        return f"step {s}" + (f" ({names[s]})" if names is not None and s < len(names) else "")

    check_cores(len(lanes), threads_per_lane, allow_oversubscribe)
    if len(waits) != num_steps:
        raise InvalidScheduleError(f"{len(waits)} wait lists for {num_steps} steps")
    lane_of = [-1] * num_steps
    for k, chain in enumerate(lanes):
        for s in chain:
            if not isinstance(s, int) or not 0 <= s < num_steps:
                raise InvalidScheduleError(f"lane {k} lists step {s!r}; there are {num_steps}")
            if lane_of[s] != -1:
                raise InvalidScheduleError(f"{name(s)} is on lane {lane_of[s]} and on lane {k}")
            lane_of[s] = k
    for s, k in enumerate(lane_of):
        if k == -1:
            raise InvalidScheduleError(f"{name(s)} is on no lane")
    preds: list[list[int]] = [[] for _ in range(num_steps)]
    for s, ws in enumerate(waits):
        for w in ws:
            if not isinstance(w, int) or not 0 <= w < num_steps:
                raise InvalidScheduleError(f"{name(s)} waits for step {w!r}; there are "
                                           f"{num_steps}")
            if lane_of[w] == lane_of[s]:
                raise InvalidScheduleError(f"{name(s)} waits for {name(w)} on its own lane "
                                           f"{lane_of[s]}")
            preds[s].append(w)
    for chain in lanes:
        for a, b in zip(chain, chain[1:], strict=False):
            preds[b].append(a)
    order, left = kahn_lists(preds)
    if left:
        cycle = find_cycle(preds, left)
        raise CycleError("the lane orders and waits form a cycle: "
                         + " -> ".join(name(s) for s in cycle), cycle)
    return order


def _configure_lane(lane: int, threads_per_lane: int, pin: bool) -> None:
    """Pin the calling lane thread and size its TVM thread pool (best effort for pinning)."""
    cores = lane_cores(lane, threads_per_lane) if pin else None
    if cores is not None:
        try:
            os.sched_setaffinity(0, cores)  # 0: the calling thread on Linux
        except (AttributeError, OSError):
            cores = None
    if "tvm" not in sys.modules:
        return  # no TVM runtime loaded: no TVM thread pool to size
    try:
        import tvm

        config = tvm.get_global_func("runtime.config_threadpool")
    except Exception:  # noqa: BLE001 - no TVM runtime: nothing to size
        return
    share_all = -3  # ThreadGroup::kSpecifyThreadShareAllCore
    cpus = cores if cores is not None else usable_cores()
    config(share_all, threads_per_lane, [str(c) for c in cpus])


class _Shared:
    """State the lane threads share (kept apart from the engine so threads do not keep it
    alive: the engine can be garbage collected while its threads wait)."""

    def __init__(self, funcs, steps, lanes, waits):
        self.funcs = list(funcs)
        self.calls = [(self.funcs[f], tuple(args)) for f, args in steps]
        self.lanes = [list(c) for c in lanes]
        self.waits = [list(w) for w in waits]
        self.done = [threading.Event() for _ in steps]
        self.start = [threading.Semaphore(0) for _ in lanes]
        self.finished = threading.Semaphore(0)
        self.abort = False
        self.closing = False
        self.error: tuple[int, int, BaseException] | None = None
        self.lock = threading.Lock()


def _lane_main(shared: _Shared, lane: int, threads_per_lane: int, pin: bool,
               ready: threading.Event, setup_error: list) -> None:
    try:
        _configure_lane(lane, threads_per_lane, pin)
    except Exception as err:  # noqa: BLE001 - reported by the constructor
        setup_error.append(err)
    ready.set()
    chain, calls, waits, done = shared.lanes[lane], shared.calls, shared.waits, shared.done
    while True:
        shared.start[lane].acquire()
        if shared.closing:
            return
        for s in chain:
            for w in waits[s]:
                done[w].wait()
            if shared.abort:
                break
            fn, args = calls[s]
            try:
                fn(*args)
            except BaseException as err:  # noqa: BLE001 - stop every lane, report in run()
                with shared.lock:
                    if shared.error is None:
                        shared.error = (s, lane, err)
                    shared.abort = True
                for ev in done:  # wake every waiter; they see abort and stop
                    ev.set()
                break
            done[s].set()
        shared.finished.release()


def _shutdown(shared: _Shared, threads: list[threading.Thread]) -> None:
    shared.closing = True
    for sem in shared.start:
        sem.release()
    for t in threads:
        if t is not threading.current_thread():
            t.join(timeout=10.0)


class PythonEngine:
    """Runs lanes of kernel steps on persistent Python threads (see the module docstring).

    Parameters
    ----------
    funcs
        The kernels, called as ``funcs[f](*args)``.
    steps
        Per step, ``(function index, arguments)``.
    lanes
        Per lane, its step ids in run order.
    waits
        Per step, the steps of other lanes it waits for.
    threads_per_lane
        TVM CPU threads of each lane.
    pin
        Pin each lane's thread to its cores.
    allow_oversubscribe
        Allow more lane threads than usable cores.
    step_names
        Names for error messages.

    Raises
    ------
    InvalidScheduleError
        A step calls a missing function, the lanes and waits are invalid (see
        :func:`check_lanes`), or a lane thread cannot be configured.
    CycleError
        The lane orders and waits form a cycle.
    """

    kind = "python"

    def __init__(self, funcs: Sequence[Callable[..., Any]], steps: Sequence[tuple[int, Sequence]],
                 lanes: Sequence[Sequence[int]], waits: Sequence[Sequence[int]], *,
                 threads_per_lane: int = 1, pin: bool = True,
                 allow_oversubscribe: bool = False, step_names: Sequence[str] | None = None):
        steps = [(int(f), list(a)) for f, a in steps]
        for s, (f, _args) in enumerate(steps):
            if not 0 <= f < len(funcs):
                raise InvalidScheduleError(f"step {s} calls function {f}; there are {len(funcs)}")
        lanes = [[int(s) for s in c] for c in lanes]
        waits = [[int(w) for w in ws] for ws in waits]
        check_lanes(len(steps), lanes, waits, threads_per_lane=threads_per_lane,
                    allow_oversubscribe=allow_oversubscribe, names=step_names)
        self.threads_per_lane = int(threads_per_lane)
        self.pin = pin
        self.step_names = list(step_names) if step_names is not None else None
        self._shared = _Shared(funcs, steps, lanes, waits)
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._run_lock = threading.Lock()
        setup_error: list = []
        for k in range(len(lanes)):
            ready = threading.Event()
            t = threading.Thread(target=_lane_main, name=f"tvm_sched-lane-{k}", daemon=True,
                                 args=(self._shared, k, self.threads_per_lane, pin, ready,
                                       setup_error))
            t.start()
            ready.wait()
            self._threads.append(t)
        self._finalizer = weakref.finalize(self, _shutdown, self._shared, self._threads)
        if setup_error:
            self.close()
            raise InvalidScheduleError(f"cannot configure a lane thread: {setup_error[0]}"
                                       ) from setup_error[0]

    @property
    def num_lanes(self) -> int:
        return len(self._shared.lanes)

    def run(self) -> None:
        """Run every lane once; block until all are done.

        Raises
        ------
        LaneError
            A kernel raised; every lane stopped. The message names the step and the cause.
        RuntimeError
            The engine is closed.
        """
        if self._closed:
            raise RuntimeError("the engine is closed")
        sh = self._shared
        with self._run_lock:
            for ev in sh.done:
                ev.clear()
            sh.abort = False
            sh.error = None
            for sem in sh.start:
                sem.release()
            for _ in sh.start:
                sh.finished.acquire()
            if sh.error is not None:
                s, lane, err = sh.error
                name = f" ({self.step_names[s]})" if self.step_names else ""
                first = (str(err).strip().splitlines() or [type(err).__name__])[-1]
                raise LaneError(f"step {s}{name} on lane {lane} failed: "
                                f"{type(err).__name__}: {first[:300]}") from err

    def close(self) -> None:
        """End and join the lane threads (idempotent)."""
        if not self._closed:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> PythonEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

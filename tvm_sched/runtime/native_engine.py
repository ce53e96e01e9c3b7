"""The native lane engine: a C++ library (one OS thread per lane, atomic waits) behind the
"Lane engine interface" of :mod:`tvm_sched.runtime`.

Contract
--------
``NativeEngine(funcs, steps, lanes, waits, *, threads_per_lane=1, pin=True,
allow_oversubscribe=False, step_names=None, spin_us=None)`` behaves like
:class:`~tvm_sched.runtime.engine_python.PythonEngine`:

- ``funcs``: callables (``tvm_ffi.Function`` kernels; Python callables work too, but they take
  the GIL); ``steps``: ``(func_index, args)``, ``args`` a list of ``tvm.runtime.Tensor`` or ints,
  called as ``funcs[i](*args)``; ``lanes``: per lane, step ids in execution order; ``waits``:
  per step, step ids on *other* lanes that must finish before it starts.
- Construction validates the plan: every step on exactly one lane, ids in range, no wait on the
  own lane, no cycle through lane orders and waits (:class:`~tvm_sched.errors.CycleError`),
  otherwise :class:`~tvm_sched.errors.InvalidScheduleError`; no more ``lanes ×
  threads_per_lane`` than usable cores unless ``allow_oversubscribe``
  (:func:`~tvm_sched.runtime.cores.check_cores`). The plan's structure is validated once, by the
  C++ side, so no plan can crash or hang the engine.
- ``run()`` runs every lane once and blocks until all finished, with the GIL released. A kernel
  error stops every lane before its next step; ``run`` raises
  :class:`~tvm_sched.runtime.engine_python.LaneError` naming the step, its lane and the kernel's
  message. The engine stays usable.
- ``close()`` joins the lane threads (idempotent; also on ``with`` exit and when the engine is
  garbage collected).

The C++ engine is a typed tvm-ffi object (type ``tvm_sched.lanes.LaneEngine``, registered by the
library; its Python class is bound when the library loads) with the
reflected methods ``run``, ``close``, ``closed``, ``num_lanes``, ``num_steps``, ``num_waits``,
``stolen``, ``pools_configured`` and ``pinned_cores``; the library's one exported function,
``lanes_create``, validates a plan and returns one. :class:`NativeEngine` wraps it with the
Python-side checks and the tvm_sched error types.

Engine (``tvm_sched/runtime/native/``): steps are resolved at construction (function handles
and packed argument arrays, so a step's call allocates nothing); one persistent thread per
non-empty lane, started by the constructor; each lane publishes its progress with an atomic
store, and a waiting lane spins for ``spin_us`` then sleeps on a futex. With ``pin``, lane ``k``
is pinned to its own block of ``threads_per_lane`` usable cores (skipped silently when there
are too few cores or the OS refuses); each lane's TVM thread pool (thread-local in TVM) is sized
to ``threads_per_lane`` through ``runtime.config_threadpool``.

The library ``_lib/libtvm_sched_lanes.so`` is built by ``make`` (CMake, ``cmake/``) against the
headers and ``libtvm_ffi.so`` of the installed apache-tvm-ffi wheel. :func:`available` says
whether it was built and loads; callers then fall back to the Python engine.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

from tvm_sched.errors import CycleError, InvalidScheduleError, LaneError, TvmSchedError
from tvm_sched.runtime.cores import check_cores

__all__ = ["NativeEngine", "NativeEngineUnavailableError", "available", "library_path",
           "unavailable_reason", "TYPE_KEY"]

_LIB_NAME = "libtvm_sched_lanes.so"
#: The tvm-ffi type key of the C++ engine object (``tvm_sched/runtime/native/module.cc``).
TYPE_KEY = "tvm_sched.lanes.LaneEngine"
_DEFAULT_SPIN_US = 50.0
_DEFAULT_STEAL_US = 20.0
_CYCLE_PREFIX = "invalid lane plan: lane orders and waits form a cycle"


class NativeEngineUnavailableError(TvmSchedError, ImportError):
    """The native engine library was not built (or does not load); the message says why."""


def library_path() -> Path:
    """Where ``make`` writes the engine library (inside the package).

    Returns
    -------
    Path
        ``tvm_sched/runtime/_lib/<library name>``, whether or not it exists.
    """
    return Path(__file__).resolve().parent / "_lib" / _LIB_NAME


def _bind_object_class(tvm_ffi) -> type:
    """The Python class of :data:`TYPE_KEY` (registered once the library has loaded)."""

    @tvm_ffi.register_object(TYPE_KEY, init=False)
    class LaneEngineObject(tvm_ffi.Object):
        """The C++ lane engine (made by ``lanes_create``); methods ``run()``, ``close()``,
        ``closed()``, ``num_lanes()``, ``num_steps()``, ``num_waits()``, ``stolen()``,
        ``pools_configured()``, ``pinned_cores()`` (see ``native/module.cc``)."""

    # run() and close() must not hold the GIL (Python kernels on the lanes may need it), whatever
    # TVM_FFI_RELEASE_GIL_BY_DEFAULT says; the class's methods call these very functions.
    for method in LaneEngineObject.__tvm_ffi_type_info__.methods:
        method.func.release_gil = True
    return LaneEngineObject


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Any, str]:
    """The loaded library's ``lanes_create`` function and "" or (None, why it is unavailable)."""
    path = library_path()
    if not path.is_file():
        return None, (f"{path} was not built (run `make` at the top of the repository; it needs "
                      "cmake and a C++ compiler)")
    try:
        import tvm_ffi

        create = tvm_ffi.load_module(str(path))["lanes_create"]
        _bind_object_class(tvm_ffi)
        return create, ""
    except Exception as err:  # noqa: BLE001 - any load failure means "not available"
        return None, f"{path} does not load: {type(err).__name__}: {err}"


def available() -> bool:
    """Whether the native engine library was built and loads.

    Returns
    -------
    bool
        True when the library loads (the answer is cached for the process).

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    return _load()[0] is not None


def unavailable_reason() -> str:
    """Why :func:`available` is False ("" when it is True).

    Returns
    -------
    str
        A sentence naming the missing or unloadable library, or ``""``.
    """
    return _load()[1]


def _plan_error(err: Exception) -> InvalidScheduleError:
    """Map the library's ValueError to the tvm_sched error with the same message."""
    message = str(err).strip()
    if message.startswith(_CYCLE_PREFIX):
        steps = [int(s) for s in re.findall(r"step (\d+)", message)]
        return CycleError(message, steps[:-1])  # the message repeats the first step at the end
    return InvalidScheduleError(message)


def _arg(value: Any) -> Any:
    if isinstance(value, bool):
        raise InvalidScheduleError(f"a step argument is a bool ({value}); pass tensors or ints")
    if isinstance(value, Integral):
        return int(value)
    return value


class NativeEngine:
    """Runs lanes of kernel steps on native threads (see the module docstring).

    Parameters
    ----------
    funcs
        The function table (``tvm_ffi.Function`` kernels or other callables).
    steps
        ``(func_index, args)`` per step.
    lanes
        Per lane, its step ids in execution order.
    waits
        Per step, the ids of steps on other lanes that must finish before it starts.
    threads_per_lane
        Size of each lane's TVM CPU thread pool (and its block of cores when pinned).
    pin
        Pin lanes to disjoint cores where possible.
    allow_oversubscribe
        Allow more ``lanes × threads_per_lane`` than usable cores (waits then sleep at once
        instead of spinning).
    step_names
        Optional step names for error messages.
    spin_us
        How long a waiting lane spins before it sleeps; default 50 µs, 0 when oversubscribed.
    steal_us
        Work sharing: a thread whose own lane is blocked runs another lane's next step once
        that step has been ready and untaken this long (default 20 µs; a lane whose thread
        lost its core to another process hands its ready steps to an idle thread); a negative
        value: never, each lane only on its own thread. Steps still start only after their
        lane's previous step and their waits, so the plan's arena stays safe.
    owners
        Per lane, the thread that owns it (``None``: lane ``k`` on thread ``k``). A thread may
        own several lanes -- the queues :func:`tvm_sched.runtime.queues.split_lanes` cuts from
        one lane of a plan -- and runs the first of them whose next step is ready, in lane
        order; pinning and thread pools are per thread, and the core check counts threads.

    Raises
    ------
    NativeEngineUnavailableError
        The library was not built.
    InvalidScheduleError
        The plan is invalid (the message names the steps) or needs too many cores.
    CycleError
        The lane orders and waits form a cycle (``.cycle`` lists its steps).
    TypeError
        A function is not callable.

    Examples
    --------
    >>> import tvm_ffi
    >>> seen = []
    >>> def record(i):
    ...     seen.append(i)
    >>> if available():
    ...     with NativeEngine([tvm_ffi.convert(record)], [(0, [1]), (0, [2])], [[0, 1]],
    ...                       [[], []]) as engine:
    ...         engine.run()
    ... else:
    ...     seen = [1, 2]
    >>> seen
    [1, 2]
    """

    kind = "native"

    def __init__(self, funcs: Sequence[Callable[..., Any]], steps: Sequence[tuple[int, Sequence]],
                 lanes: Sequence[Sequence[int]], waits: Sequence[Sequence[int]], *,
                 threads_per_lane: int = 1, pin: bool = True, allow_oversubscribe: bool = False,
                 step_names: Sequence[str] | None = None, spin_us: float | None = None,
                 steal_us: float | None = None, owners: Sequence[int] | None = None):
        self._engine = None
        create, why = _load()
        if create is None:
            raise NativeEngineUnavailableError(f"the native lane engine is unavailable: {why}")
        import tvm_ffi

        threads_per_lane = int(threads_per_lane)
        owner_list = [int(o) for o in owners] if owners is not None else []
        if owner_list and (len(owner_list) != len(lanes)
                           or not all(0 <= o < len(lanes) for o in owner_list)):
            raise InvalidScheduleError(f"owners must give each of the {len(lanes)} lanes a "
                                       f"thread in 0..{len(lanes) - 1}, got {owner_list!r:.80}")
        num_threads = max(owner_list) + 1 if owner_list else len(lanes)
        oversubscribed = check_cores(num_threads, threads_per_lane, allow_oversubscribe)
        if spin_us is None:
            spin_us = 0.0 if oversubscribed else _DEFAULT_SPIN_US
        if spin_us < 0:
            raise InvalidScheduleError(f"spin_us must be >= 0, got {spin_us}")
        steal_us = _DEFAULT_STEAL_US if steal_us is None else float(steal_us)
        table = []
        for i, f in enumerate(funcs):
            if isinstance(f, tvm_ffi.Function):
                table.append(f)
            elif callable(f):
                table.append(tvm_ffi.convert(f))
            else:
                raise TypeError(f"funcs[{i}] is not callable: {type(f).__name__}")
        step_funcs, step_args = [], []
        for s, step in enumerate(steps):
            try:
                f, args = step
            except (TypeError, ValueError):
                raise InvalidScheduleError(f"step {s} is not a (func_index, args) pair: "
                                           f"{step!r}") from None
            step_funcs.append(int(f))
            step_args.append([_arg(a) for a in args])
        lane_lists = [[int(s) for s in lane] for lane in lanes]
        wait_lists = [[int(w) for w in ws] for ws in waits]
        names = [str(n) for n in step_names] if step_names is not None else []
        try:
            engine = create(table, step_funcs, step_args, lane_lists, wait_lists,
                            threads_per_lane, bool(pin), int(round(spin_us * 1000)), names,
                            -1 if steal_us < 0 else int(round(steal_us * 1000)), owner_list)
        except ValueError as err:
            raise _plan_error(err) from err
        self._engine = engine
        self.threads_per_lane = threads_per_lane
        self.pin = bool(pin)
        self.num_lanes = len(lane_lists)
        self.num_threads = num_threads
        self.num_steps = len(step_funcs)

    @property
    def pinned_cores(self) -> list[list[int]]:
        """Per thread (lane ``k`` on thread ``k`` unless ``owners`` says otherwise), the cores
        it is pinned to (empty: not pinned or no thread)."""
        return [list(c) for c in self._live().pinned_cores()]

    @property
    def pools_configured(self) -> bool:
        """Whether every lane's TVM thread pool was sized to ``threads_per_lane``."""
        return bool(self._live().pools_configured())

    @property
    def num_waits(self) -> int:
        """Cross-lane waits the engine keeps (waits implied by earlier ones are dropped)."""
        return int(self._live().num_waits())

    @property
    def stolen(self) -> int:
        """Steps run by another lane's thread (work sharing) since the engine started."""
        return int(self._live().stolen())

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._engine is None

    def _live(self):
        if self._engine is None:
            raise RuntimeError("the engine is closed")
        return self._engine

    def run(self) -> None:
        """Run every lane once; block until all are done (the GIL is released meanwhile).

        Raises
        ------
        LaneError
            A kernel raised; every lane stopped. The message names the step and the cause.
        RuntimeError
            The engine is closed.
        """
        engine = self._live()
        try:
            engine.run()  # a tvm-ffi call: the GIL is released while the lanes run
        except RuntimeError as err:
            raise LaneError(str(err).strip()) from err

    def close(self) -> None:
        """Join the lane threads (idempotent)."""
        engine = self._engine
        if engine is not None:
            engine.close()  # raises (and keeps the engine) when called from one of its lanes
            self._engine = None

    def __enter__(self) -> NativeEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

"""``LaneModule``: a lane plan bound to kernels, memory and a lane engine.

Contract
--------
A ``LaneModule`` owns, for one plan: the kernel library (a TVM runtime module whose kernels are
found by name, ``get_function(name, query_imports=True)``), one 64-byte-aligned host arena whose
intermediates are pointer-advanced views made with DLPack (``byte_offset`` stays 0: TVM's default
kernels reject a non-zero one), separately allocated outputs, bound weights and constants,
persistent input buffers and an engine. ``__call__(*inputs)`` copies the inputs in, runs every
lane once and returns the outputs as numpy arrays; ``time(number, repeat)`` times runs of the
engine alone (median seconds); ``export(path)`` writes one file (a tar of ``plan.json``, the
kernel library and the bound arrays) that :func:`load` reads back, here or in an RPC server.

Inputs are ``main``'s parameters that were not bound when the module was built (usually the
first ``num_input``); a wrong count, shape or dtype raises :class:`LaneInputError`.

Threads: a module has one input buffer set, one arena and one output set, so a call is one
locked step: ``__call__`` holds the module's lock over copying the inputs in, running and
copying the outputs out (``set_inputs``, ``run``, ``outputs``, ``time`` and ``poison`` take the
same re-entrant lock). Calls from several threads are therefore serialised -- each gets its
own outputs, and concurrent calls on one module do not run in parallel; the cost is one
uncontended lock acquire and release per call (about 0.1 µs here, against about 0.8 ms for a
call of the zoo's small inception). To run requests in parallel, build or load one module per
thread.

Artifacts: ``export`` writes and :func:`load` reads the one-file format of
:mod:`tvm_sched.runtime.artifact` (:data:`EXPORT_FORMAT`: a tar of the plan, the arrays and the
kernel library, with SHA-256 checksums). **Loading an artifact runs its kernels' code**
(``kernels.so`` is loaded with ``dlopen``, which runs the library's constructors), so load only
artifacts you trust; every check that needs no code to run -- file kind, member headers and
sizes, checksums, the plan, the arrays against the plan, the ELF headers -- comes first, and
any failure is one :class:`~tvm_sched.errors.InvalidScheduleError` naming the file and member.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tvm_sched.errors import InvalidScheduleError, LaneInputError, one_line
from tvm_sched.runtime.adaptive import MODES, ModeChooser
from tvm_sched.runtime.artifact import (
    EXPORT_FORMAT,
    MAX_MEMBER_BYTES,
    read_artifact,
    write_artifact,
)
from tvm_sched.runtime.plan import ALIGN, LanePlan, numpy_dtype
from tvm_sched.runtime.queues import split_lanes

__all__ = ["LaneModule", "LaneInputError", "load", "make_engine", "EXPORT_FORMAT",
           "MAX_MEMBER_BYTES"]

log = logging.getLogger(__name__)

_warned_python = False


def native_engines(kind: str):
    """The native engine module when ``kind`` (``"auto"``, ``"native"``, ``"python"``) runs the
    native engine, else ``None``; ``"auto"`` without a built engine says so once (a log
    warning).

    Parameters
    ----------
    kind
        ``"auto"``, ``"native"`` or ``"python"``.

    Returns
    -------
    module or None
        :mod:`tvm_sched.runtime.native_engine`, or ``None`` for the Python engine.

    Raises
    ------
    ValueError
        Unknown kind, or ``"native"`` when the native engine was not built.
    """
    global _warned_python
    if kind not in ("auto", "native", "python"):
        raise ValueError(f"unknown engine {kind!r}; choose 'auto', 'native' or 'python'")
    if kind == "python":
        return None
    try:
        from tvm_sched.runtime import native_engine as native_mod

        native = native_mod if native_mod.available() else None
    except ImportError:
        native = None
    if native is None and kind == "native":
        raise ValueError("the native lane engine is not built (run `make` at the top of the "
                         "repository); use engine='python'")
    if native is None and not _warned_python:
        log.warning("the native lane engine is not built: using the Python engine "
                    "(per-kernel overhead of a few µs more)")
        _warned_python = True
    return native


def make_engine(kind: str, funcs, steps, lanes, waits, *, threads_per_lane: int = 1,
                pin: bool = True, allow_oversubscribe: bool = False, step_names=None,
                owners=None):
    """An engine of ``kind`` (``"auto"``, ``"native"``, ``"python"``) with the shared interface.

    ``"auto"`` takes the native engine when :func:`tvm_sched.runtime.native_engine.available`
    says it was built, else the Python engine, and says so once (a log warning).

    Parameters
    ----------
    kind
        ``"auto"``, ``"native"`` or ``"python"``.
    funcs, steps, lanes, waits
        The kernels, the steps ``(function index, arguments)``, the lanes' step ids and each
        step's cross-lane waits (see :class:`~tvm_sched.runtime.engine_python.PythonEngine`).
    threads_per_lane, pin, allow_oversubscribe
        Engine options.
    step_names
        Names for error messages.
    owners
        Per lane, its thread (the native engine only; see
        :class:`~tvm_sched.runtime.native_engine.NativeEngine`).

    Returns
    -------
    PythonEngine or NativeEngine
        An engine with ``run()``, ``close()`` and ``num_lanes``.

    Raises
    ------
    ValueError
        Unknown kind, ``"native"`` when the native engine was not built, or ``owners`` for
        the Python engine.
    InvalidScheduleError, CycleError
        The lanes and waits are invalid (see
        :func:`~tvm_sched.runtime.engine_python.check_lanes`).
    """
    native = native_engines(kind)
    kw = {"threads_per_lane": threads_per_lane, "pin": pin,
          "allow_oversubscribe": allow_oversubscribe}
    if native is not None:
        return native.NativeEngine(funcs, steps, lanes, waits, step_names=step_names,
                                   owners=owners, **kw)
    if owners is not None:
        raise ValueError("lane owners (queues) need the native engine")
    from tvm_sched.runtime.engine_python import PythonEngine

    return PythonEngine(funcs, steps, lanes, waits, step_names=step_names, **kw)


def _cpu_device(device):
    import tvm

    if device is None or device == "cpu" or device == "llvm":
        return tvm.cpu(0)
    if isinstance(device, str):
        raise ValueError(f"the lane runtime runs on the CPU; device {device!r} is not supported")
    if getattr(device, "device_type", None) != tvm.cpu(0).device_type:
        raise ValueError(f"the lane runtime runs on the CPU; device {device} is not supported "
                         "(GPU lanes as streams are not implemented in this build)")
    return device


class LaneModule:
    """A runnable lane plan (see the module docstring).

    Calls are serialised: ``__call__`` holds the module's re-entrant lock over copying the
    inputs in, running the lanes and copying the outputs out, so threads sharing one module each
    get their own outputs, one call after another (the lock costs one uncontended acquire per
    call). Concurrent calls on one module never run in parallel: use one module per thread for
    that.

    Adaptive (the default with several lanes): each run goes to the plan's lanes or, while
    that is faster now, to the same lanes cut into work-sharing queues (native engine) or to one
    thread running every step in a linear extension of the plan's happens-before relation (same
    tensors, same arena, same outputs bit for bit), chosen from the run times seen
    (:class:`~tvm_sched.runtime.adaptive.ModeChooser`: on a steady machine well under 1% of the
    runs try another way). A busy process that takes one of the lanes' cores then costs the
    module what the free core can absorb instead of every cross-lane wait.

    Parameters
    ----------
    plan
        The lane plan.
    lib
        TVM runtime module holding the plan's kernels.
    device
        ``"cpu"`` or a TVM CPU device.
    bound
        ``main`` parameter index -> array, bound now (weights; they are not inputs of a call).
    constants
        The module's constants in plan numbering (``lower.module_constants``).
    engine
        ``"auto"``, ``"native"`` or ``"python"``.
    pin, allow_oversubscribe
        Passed to the engine.
    exporter
        Callable writing the kernel library to a path (for :meth:`export`); default
        ``lib.export_library``.
    adaptive
        With several lanes: run each call on the lanes or, while that is faster (a busy process
        holding one of the lanes' cores), every step on one thread in
        :meth:`~tvm_sched.runtime.plan.LanePlan.serial_order` (:mod:`tvm_sched.runtime.adaptive`).
        ``False``: always the lanes (what the tuner measures).
    queues
        With several lanes on the native engine, the ``queues`` mode: each lane cut into the
        queues of steps that must run in order anyway
        (:func:`~tvm_sched.runtime.queues.split_lanes`), so that a thread whose lane waits
        takes any step whose data and bytes are ready -- of its own lane first, of the other
        lanes after the work-sharing delay. Same arena, same outputs bit for bit. ``None``
        (default): a mode the adaptive choice measures beside the others; ``True``: also the
        mode of every run without ``adaptive``; ``False``: never.

    Raises
    ------
    InvalidScheduleError
        The plan is invalid, names a kernel the library lacks, or a constant it reads is
        missing or of another shape or dtype.
    LaneInputError
        A bound parameter has another shape or dtype than the plan's.
    """

    def __init__(self, plan: LanePlan, lib, device="cpu", *,
                 bound: Mapping[int, Any] | None = None,
                 constants: Sequence[np.ndarray] = (), engine: str = "auto", pin: bool = True,
                 allow_oversubscribe: bool = False, exporter=None, adaptive: bool = True,
                 queues: bool | None = None):
        self._constants = [np.asarray(c) for c in constants]
        plan.validate(num_consts=len(self._constants))
        self.plan = plan
        self.lib = lib
        self.device = _cpu_device(device)
        self._lock = threading.RLock()
        self._exporter = exporter or (lambda p: lib.export_library(p))
        self._bound = {int(k): np.asarray(v) for k, v in (bound or {}).items()}
        self.input_indices = [i for i in range(plan.num_params) if i not in self._bound]
        self.input_specs = plan.param_specs()
        funcs = []
        for name in plan.kernels:
            try:
                fn = lib.get_function(name, query_imports=True)
            except Exception:  # noqa: BLE001 - TVM raises its own error types
                fn = None
            if fn is None:
                raise InvalidScheduleError(f"kernel {name!r} of the plan is not in the kernel "
                                           "library")
            funcs.append(fn)
        self._raw = np.zeros(plan.arena_bytes + ALIGN, dtype=np.uint8)
        off = (-self._raw.ctypes.data) % ALIGN
        self.arena = self._raw[off:off + plan.arena_bytes]
        self._inputs: dict[int, Any] = {}
        self._tensors = self._bind_tensors()
        steps = [(st.kernel, [self._tensors[a] for a in st.args] + list(st.scalars))
                 for st in plan.steps]
        self._step_calls = (engine, funcs, steps)
        self._placement = (pin, allow_oversubscribe)  # every engine of this module: the same
        cut = (queues is not False and plan.num_lanes > 1
               and native_engines(engine) is not None)
        #: The modes this module can run in (:mod:`tvm_sched.runtime.adaptive`).
        self.modes = MODES if cut else tuple(m for m in MODES if m != "queues")
        #: With the ``queues`` mode made: the queues (lists of step ids) and each one's lane.
        self.queues: tuple[tuple[tuple[int, ...], ...], list[int]] | None = None
        self._engines: dict[str, Any] = {}  # mode -> engine, each made on first use
        #: The mode of every run without a chooser.
        self.fixed_mode = "queues" if queues is True and cut else "lanes"
        self.engine = self._engine(self.fixed_mode)
        self.engine_kind = getattr(self.engine, "kind", type(self.engine).__name__)
        #: Chooses the mode of each run (None: always ``fixed_mode``); see
        #: :mod:`tvm_sched.runtime.adaptive`.
        self.chooser = (ModeChooser(modes=len(self.modes))
                        if adaptive and plan.num_lanes > 1 else None)

    def _bind_tensors(self) -> list[Any]:
        """One TVM tensor per plan tensor: arena views, own buffers, bound arrays, views."""
        import tvm

        dev, plan = self.device, self.plan
        tensors: list[Any] = [None] * len(plan.tensors)
        def arena_view(offset: int, t) -> Any:
            view = self.arena[offset:offset + t.nbytes].view(numpy_dtype(t.dtype))
            return tvm.runtime.from_dlpack(view.reshape(t.shape))

        for i, t in enumerate(plan.tensors):
            if t.kind == "arena":
                tensors[i] = arena_view(t.offset, t)
            elif t.kind == "extern":
                tensors[i] = tvm.runtime.empty(t.shape, t.dtype, dev)
            elif t.kind == "const":
                arr = self._constants[t.index]
                self._check(arr, t, f"constant {t.index}", InvalidScheduleError)
                tensors[i] = tvm.runtime.tensor(arr, dev)
            elif t.kind == "param" and t.index in self._bound:
                arr = self._bound[t.index]
                self._check(arr, t, f"bound parameter {t.index}")
                tensors[i] = tvm.runtime.tensor(arr, dev)
            elif t.kind == "param":
                tensors[i] = tvm.runtime.empty(t.shape, t.dtype, dev)
                self._inputs[t.index] = tensors[i]
        for i, t in enumerate(plan.tensors):
            if t.kind == "view" and t.offset >= 0:  # a slice of an arena tensor, in place
                tensors[i] = arena_view(plan.tensors[t.index].offset + t.offset, t)
            elif t.kind == "view":
                tensors[i] = tensors[t.index]._create_view(t.shape, t.dtype)
        return tensors

    # -- running ----------------------------------------------------------------------------
    @staticmethod
    def _check(arr, spec, what: str, error: type[Exception] = LaneInputError) -> None:
        shape = tuple(int(d) for d in arr.shape)
        dtype = str(arr.dtype)
        if shape != tuple(spec.shape) or dtype != spec.dtype:
            raise error(f"{what} is {dtype}{list(shape)}; the plan expects "
                        f"{spec.dtype}{list(spec.shape)}")

    def set_inputs(self, *inputs) -> None:
        """Copy ``inputs`` (numpy arrays or TVM tensors) into the input buffers (under the
        module's lock).

        Parameters
        ----------
        *inputs
            One array or tensor per input of the plan (array-likes are converted).

        Raises
        ------
        LaneInputError
            Wrong number of inputs, or a wrong shape or dtype (named).
        """
        with self._lock:
            self._set_inputs(inputs)

    def _set_inputs(self, inputs: Sequence) -> None:
        if len(inputs) != len(self.input_indices):
            raise LaneInputError(f"{len(inputs)} inputs given; the module takes "
                                 f"{len(self.input_indices)}")
        for k, (i, x) in enumerate(zip(self.input_indices, inputs, strict=True)):
            spec = self.input_specs[i]
            if spec is None:
                continue  # a parameter no kernel reads
            if not hasattr(x, "shape") or not hasattr(x, "dtype"):
                x = np.asarray(x)
            self._check(x, spec, f"input {k}")
            self._inputs[i].copyfrom(x)

    def run(self) -> None:
        """Run the plan once on the current inputs (under the module's lock): on its lanes, or
        on one thread while that is faster (see the class docstring)."""
        with self._lock:
            self._run()

    def _run(self) -> None:
        ch = self.chooser
        if ch is None:
            self.engine.run()
            return
        mode = ch.next()
        engine = self._engine(self.modes[mode])
        t0 = time.perf_counter()
        engine.run()
        ch.record(mode, time.perf_counter() - t0)

    def _engine(self, mode: str):
        """The engine of ``mode``, made on first use, on the same tensors: ``lanes`` (the
        plan's lanes), ``queues`` (the same threads on the lanes cut into queues,
        :func:`~tvm_sched.runtime.queues.split_lanes`) or ``serial`` (the plan's steps on one
        thread in :meth:`LanePlan.serial_order`, with every core the lanes had). Each keeps the
        order of every pair of steps that share bytes, so the arena is safe in all."""
        eng = self._engines.get(mode)
        if eng is not None:
            return eng
        kind, funcs, steps = self._step_calls
        plan = self.plan
        names = [st.name for st in plan.steps]
        pin, allow = self._placement
        if mode == "serial":
            eng = make_engine(kind, funcs, steps, [plan.serial_order()],
                              [[] for _ in plan.steps],
                              threads_per_lane=plan.threads_per_lane * plan.num_lanes,
                              pin=False, allow_oversubscribe=True, step_names=names)
        elif mode == "queues":
            split, owners = split_lanes(plan)
            eng = make_engine(kind, funcs, steps, split.lanes, split.waits,
                              threads_per_lane=plan.threads_per_lane, pin=pin,
                              allow_oversubscribe=allow, step_names=names, owners=owners)
            self.queues = (split.lanes, owners)
        else:
            eng = make_engine(kind, funcs, steps, plan.lanes, plan.waits,
                              threads_per_lane=plan.threads_per_lane, pin=pin,
                              allow_oversubscribe=allow, step_names=names)
        self._engines[mode] = eng
        return eng

    def run_step(self, step: int) -> float:
        """Run plan step ``step`` alone, once, on the module's tensors as they are now (under
        the module's lock); the seconds the kernel call took. Called for the steps of
        :meth:`LanePlan.serial_order` in turn, after inputs were set, it is a run of the plan
        one kernel at a time (the tuner's profile: every kernel on the data it receives).

        Parameters
        ----------
        step
            Index into ``plan.steps``.

        Returns
        -------
        float
            Wall seconds of the kernel call.

        Raises
        ------
        IndexError
            ``step`` is not a step of the plan.
        """
        if not 0 <= step < len(self.plan.steps):
            raise IndexError(f"step {step} is not a step of the {len(self.plan.steps)}-step "
                             "plan")
        _, funcs, steps = self._step_calls
        kernel, args = steps[step]
        fn = funcs[kernel]
        with self._lock:
            t0 = time.perf_counter()
            fn(*args)
            return time.perf_counter() - t0

    @property
    def mode(self) -> str:
        """``"lanes"`` or ``"serial"``: how the next run will run."""
        return self.fixed_mode if self.chooser is None else self.modes[self.chooser.next()]

    def outputs(self) -> list[np.ndarray]:
        """Copies of the outputs of the last run (under the module's lock).

        Returns
        -------
        list of numpy.ndarray
            One per output of the plan.
        """
        with self._lock:
            return self._outputs()

    def _outputs(self) -> list[np.ndarray]:
        return [self._tensors[o].numpy() for o in self.plan.outputs]

    def __call__(self, *inputs) -> list[np.ndarray]:
        """Run on ``inputs`` (numpy arrays or TVM tensors); return the outputs as numpy arrays.

        Setting the inputs, running and reading the outputs is one step under the module's
        lock: calls from several threads are serialised (see the class docstring).

        Raises
        ------
        LaneInputError
            As :meth:`set_inputs`.
        LaneError
            A kernel failed (the message names the step and its lane).
        """
        with self._lock:  # one acquire per call
            self._set_inputs(inputs)
            self._run()
            return self._outputs()

    def time(self, number: int = 10, repeat: int = 5, *, warmup: int = 1) -> float:
        """Median seconds of one run over ``repeat`` timings of ``number`` runs each (engine only,
        inputs as last set; the module's lock is held throughout).

        Parameters
        ----------
        number
            Runs per timing (at least 1).
        repeat
            Timings (at least 1).
        warmup
            Untimed runs first.

        Returns
        -------
        float
            The median seconds per run.

        Raises
        ------
        LaneError
            A kernel failed.
        """
        with self._lock:
            for _ in range(warmup):
                self._run()
            samples = []
            for _ in range(max(1, repeat)):
                t0 = time.perf_counter()
                for _ in range(max(1, number)):
                    self._run()
                samples.append((time.perf_counter() - t0) / max(1, number))
        return float(statistics.median(samples))

    def poison(self, byte: int = 0xFF) -> None:
        """Fill the arena with ``byte`` (0xFF: NaN for floats) -- for race tests.

        Parameters
        ----------
        byte
            The fill value, 0..255.
        """
        with self._lock:
            self.arena.fill(byte)

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    # -- export / load ----------------------------------------------------------------------
    def export(self, path: str | Path) -> Path:
        """Write the module as one file (:func:`tvm_sched.runtime.artifact.write_artifact`).

        Parameters
        ----------
        path
            The file to write.

        Returns
        -------
        Path
            ``path``.
        """
        arrays = {f"param_{i}": a for i, a in self._bound.items()}
        arrays.update({f"const_{i}": c for i, c in enumerate(self._constants)})
        return write_artifact(path, self.plan, arrays, self._exporter)

    def close(self) -> None:
        """End the engines' threads (idempotent)."""
        for eng in self._engines.values():
            eng.close()

    def __enter__(self) -> LaneModule:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LaneModule({self.plan.summary()}, engine={self.engine_kind})"


def load(path: str | Path, device="cpu", *, engine: str = "auto", pin: bool = True,
         allow_oversubscribe: bool = False, threads_per_lane: int | None = None,
         adaptive: bool = True, queues: bool | None = None) -> LaneModule:
    """Read a module written by :meth:`LaneModule.export`.

    **Loading an artifact runs its kernels' code**: ``kernels.so`` is loaded with ``dlopen``,
    which runs the library's constructors with your rights. Load only artifacts you trust.
    Everything that can be checked without running code is checked first
    (:func:`tvm_sched.runtime.artifact.read_artifact`): the file, the tar's members and their
    sizes, the SHA-256 checksums, the plan, the arrays against the plan and the ELF headers of
    ``kernels.so``.

    Parameters
    ----------
    path
        The exported file.
    device, engine, pin, allow_oversubscribe, adaptive, queues
        As :class:`LaneModule`.
    threads_per_lane
        Override the plan's TVM threads per lane.

    Returns
    -------
    LaneModule
        The module, ready to call.

    Raises
    ------
    InvalidScheduleError
        ``path`` is not a regular file, not an exported lane module of this format, or any
        member is corrupt, oversized, fails its checksum or does not fit the plan; the message
        is one line naming the file and the member.
    ValueError
        An unknown engine, or a device other than the CPU.
    """
    import tvm

    name = str(path)
    art = read_artifact(name, threads_per_lane=threads_per_lane)
    lib_bytes = art.library
    with tempfile.TemporaryDirectory(prefix="tvm_sched_lanes_") as tmp:
        lib_path = Path(tmp) / "kernels.so"
        lib_path.write_bytes(lib_bytes)
        try:
            lib = tvm.runtime.load_module(str(lib_path))  # runs the library's code
        except Exception as err:  # noqa: BLE001 - TVM raises its own error types
            raise InvalidScheduleError(f"{name}: kernels.so cannot be loaded: "
                                       f"{one_line(err, last=True)}") from err
    try:
        return LaneModule(art.plan, lib, device, bound=art.bound, constants=art.constants,
                          engine=engine, pin=pin, allow_oversubscribe=allow_oversubscribe,
                          exporter=lambda p: Path(p).write_bytes(lib_bytes), adaptive=adaptive,
                          queues=queues)
    except InvalidScheduleError as err:
        raise InvalidScheduleError(f"{name}: {one_line(err)}") from err

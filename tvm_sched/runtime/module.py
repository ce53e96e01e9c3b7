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
"""

from __future__ import annotations

import io
import json
import logging
import statistics
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tvm_sched.errors import InvalidScheduleError, LaneInputError
from tvm_sched.runtime.plan import ALIGN, LanePlan

__all__ = ["LaneModule", "LaneInputError", "load", "make_engine", "EXPORT_FORMAT"]

log = logging.getLogger(__name__)

EXPORT_FORMAT = "tvm_sched.LaneModule/1"
_warned_python = False


def make_engine(kind: str, funcs, steps, lanes, waits, *, threads_per_lane: int = 1,
                pin: bool = True, allow_oversubscribe: bool = False, step_names=None):
    """An engine of ``kind`` (``"auto"``, ``"native"``, ``"python"``) with the shared interface.

    ``"auto"`` takes the native engine when :func:`tvm_sched.runtime.native.available` says it
    was built, else the Python engine, and says so once (a log warning).

    Raises
    ------
    ValueError
        Unknown kind, or ``"native"`` when the native engine was not built.
    """
    global _warned_python
    if kind not in ("auto", "native", "python"):
        raise ValueError(f"unknown engine {kind!r}; choose 'auto', 'native' or 'python'")
    native = None
    if kind in ("auto", "native"):
        try:
            from tvm_sched.runtime import native as native_mod

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
    kw = {"threads_per_lane": threads_per_lane, "pin": pin,
          "allow_oversubscribe": allow_oversubscribe}
    if native is not None:
        return native.NativeEngine(funcs, steps, lanes, waits, step_names=step_names, **kw)
    from tvm_sched.runtime.engine_python import PythonEngine

    return PythonEngine(funcs, steps, lanes, waits, step_names=step_names, **kw)


def _np_dtype(dtype: str) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        raise InvalidScheduleError(f"dtype {dtype!r} has no numpy equivalent for the host "
                                   "arena") from None


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
    """

    def __init__(self, plan: LanePlan, lib, device="cpu", *,
                 bound: Mapping[int, Any] | None = None,
                 constants: Sequence[np.ndarray] = (), engine: str = "auto", pin: bool = True,
                 allow_oversubscribe: bool = False, exporter=None):
        import tvm

        plan.validate()
        self.plan = plan
        self.lib = lib
        self.device = _cpu_device(device)
        self._exporter = exporter or (lambda p: lib.export_library(p))
        self._bound = {int(k): np.asarray(v) for k, v in (bound or {}).items()}
        self._constants = [np.asarray(c) for c in constants]
        specs = plan.param_specs()
        self.input_indices = [i for i in range(plan.num_params) if i not in self._bound]
        self.input_specs = specs
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
        dev = self.device
        tensors: list[Any] = [None] * len(plan.tensors)
        self._inputs: dict[int, Any] = {}
        for i, t in enumerate(plan.tensors):
            if t.kind == "arena":
                view = self.arena[t.offset:t.offset + t.nbytes].view(_np_dtype(t.dtype))
                tensors[i] = tvm.runtime.from_dlpack(view.reshape(t.shape))
            elif t.kind == "extern":
                tensors[i] = tvm.runtime.empty(t.shape, t.dtype, dev)
            elif t.kind == "const":
                tensors[i] = tvm.runtime.tensor(self._constants[t.index], dev)
            elif t.kind == "param":
                if t.index in self._bound:
                    arr = self._bound[t.index]
                    self._check(arr, t, f"bound parameter {t.index}")
                    tensors[i] = tvm.runtime.tensor(arr, dev)
                else:
                    tensors[i] = tvm.runtime.empty(t.shape, t.dtype, dev)
                    self._inputs[t.index] = tensors[i]
        for i, t in enumerate(plan.tensors):
            if t.kind == "view":
                tensors[i] = tensors[t.index]._create_view(t.shape, t.dtype)
        self._tensors = tensors
        steps = [(st.kernel, [tensors[a] for a in st.args] + list(st.scalars))
                 for st in plan.steps]
        self.engine = make_engine(engine, funcs, steps, plan.lanes, plan.waits,
                                  threads_per_lane=plan.threads_per_lane, pin=pin,
                                  allow_oversubscribe=allow_oversubscribe,
                                  step_names=[st.name for st in plan.steps])
        self.engine_kind = getattr(self.engine, "kind", type(self.engine).__name__)

    # -- running ----------------------------------------------------------------------------
    @staticmethod
    def _check(arr, spec, what: str) -> None:
        shape = tuple(int(d) for d in arr.shape)
        dtype = str(arr.dtype)
        if shape != tuple(spec.shape) or dtype != spec.dtype:
            raise LaneInputError(f"{what} is {dtype}{list(shape)}; the plan expects "
                                 f"{spec.dtype}{list(spec.shape)}")

    def set_inputs(self, *inputs) -> None:
        """Copy ``inputs`` (numpy arrays or TVM tensors) into the input buffers.

        Raises
        ------
        LaneInputError
            Wrong number of inputs, or a wrong shape or dtype (named).
        """
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
        """Run every lane once on the current inputs."""
        self.engine.run()

    def outputs(self) -> list[np.ndarray]:
        """Copies of the outputs of the last run."""
        return [self._tensors[o].numpy() for o in self.plan.outputs]

    def __call__(self, *inputs) -> list[np.ndarray]:
        """Run on ``inputs`` (numpy arrays or TVM tensors); return the outputs as numpy arrays."""
        self.set_inputs(*inputs)
        self.engine.run()
        return self.outputs()

    def time(self, number: int = 10, repeat: int = 5, *, warmup: int = 1) -> float:
        """Median seconds of one run over ``repeat`` timings of ``number`` runs each (engine only,
        inputs as last set)."""
        for _ in range(warmup):
            self.engine.run()
        samples = []
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            for _ in range(max(1, number)):
                self.engine.run()
            samples.append((time.perf_counter() - t0) / max(1, number))
        return float(statistics.median(samples))

    def poison(self, byte: int = 0xFF) -> None:
        """Fill the arena with ``byte`` (0xFF: NaN for floats) -- for race tests."""
        self.arena.fill(byte)

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    # -- export / load ----------------------------------------------------------------------
    def export(self, path: str | Path) -> Path:
        """Write the module as one file (a tar: plan, kernel library, bound arrays)."""
        path = Path(path)
        with tempfile.TemporaryDirectory(prefix="tvm_sched_lanes_") as tmp:
            lib_path = Path(tmp) / "kernels.so"
            self._exporter(str(lib_path))
            arrays = {f"param_{i}": a for i, a in self._bound.items()}
            arrays.update({f"const_{i}": c for i, c in enumerate(self._constants)})
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            header = json.dumps({"format": EXPORT_FORMAT}).encode()
            with tarfile.open(path, "w") as tar:
                for name, data in (("format.json", header),
                                   ("plan.json", self.plan.to_json().encode()),
                                   ("arrays.npz", buf.getvalue())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                tar.add(str(lib_path), arcname="kernels.so")
        return path

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> LaneModule:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LaneModule({self.plan.summary()}, engine={self.engine_kind})"


def load(path: str | Path, device="cpu", *, engine: str = "auto", pin: bool = True,
         allow_oversubscribe: bool = False, threads_per_lane: int | None = None) -> LaneModule:
    """Read a module written by :meth:`LaneModule.export`.

    Raises
    ------
    InvalidScheduleError
        Not an exported lane module, or its plan is invalid.
    """
    import tvm

    path = Path(path)
    try:
        tar = tarfile.open(path, "r")
    except (OSError, tarfile.TarError) as err:
        raise InvalidScheduleError(f"{str(path)!r} is not an exported lane module: {err}"
                                   ) from err
    with tar, tempfile.TemporaryDirectory(prefix="tvm_sched_lanes_") as tmp:
        names = set(tar.getnames())
        need = {"format.json", "plan.json", "arrays.npz", "kernels.so"}
        if not need <= names:
            raise InvalidScheduleError(f"{str(path)!r} is not an exported lane module (missing "
                                       f"{', '.join(sorted(need - names))})")
        fmt = json.loads(tar.extractfile("format.json").read())
        if fmt.get("format") != EXPORT_FORMAT:
            raise InvalidScheduleError(f"{str(path)!r} has format {fmt.get('format')!r}; this "
                                       f"tvm_sched reads {EXPORT_FORMAT}")
        plan = LanePlan.from_json(tar.extractfile("plan.json").read().decode())
        if threads_per_lane is not None:
            plan = plan.with_threads(threads_per_lane)
        with np.load(io.BytesIO(tar.extractfile("arrays.npz").read())) as z:
            arrays = {k: z[k] for k in z.files}
        lib_bytes = tar.extractfile("kernels.so").read()
        lib_path = Path(tmp) / "kernels.so"
        lib_path.write_bytes(lib_bytes)
        lib = tvm.runtime.load_module(str(lib_path))
    bound = {int(k[6:]): v for k, v in arrays.items() if k.startswith("param_")}
    consts = [arrays[f"const_{i}"] for i in range(sum(k.startswith("const_") for k in arrays))]
    return LaneModule(plan, lib, device, bound=bound, constants=consts, engine=engine, pin=pin,
                      allow_oversubscribe=allow_oversubscribe,
                      exporter=lambda p: Path(p).write_bytes(lib_bytes))

"""What the tuner tunes: a fused Relax module, its operator graphs, inputs and weights.

Three sources, one result (:class:`TuneModel`):

- a zoo model by name (:mod:`tvm_sched.zoo`; weights random but seeded, torch's outputs kept as a
  reference);
- an ONNX file (``tvm.relax.frontend.onnx``; needs the ``onnx`` extra; weights are constants);
- a Python file defining an ``IRModule`` named ``mod`` (or exactly one ``IRModule`` at top level),
  optionally ``inputs`` and ``params`` (lists of numpy arrays for ``main``'s inputs and trailing
  weight parameters).

Inputs that the source does not give are drawn from a seeded generator for ``main``'s static
shapes (floats N(0, 1), integers in [0, 8)). Every bad input is a :class:`TuneInputError` raised
before anything is written.
"""

from __future__ import annotations

import hashlib
import runpy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi
from tvm import relax

from tvm_sched.errors import TuneInputError
from tvm_sched.graph import OpGraph
from tvm_sched.relax.extract import extract
from tvm_sched.relax.frontend import prepare
from tvm_sched.relax.passes import is_fused

__all__ = ["TuneModel", "load_model", "check_target"]


@dataclass
class TuneModel:
    """A fused module ready to reorder, with everything needed to run it.

    Attributes
    ----------
    name
        Model name (for records and reports).
    mod
        The fused module (``main`` takes ``(*inputs, *params)``; ``main_transform_params``, when
        present, maps the raw params to ``main``'s).
    graphs
        One OpGraph per dataflow block of ``main``.
    inputs, params
        numpy arrays for ``main`` (params raw, before ``main_transform_params``).
    reference
        Outputs of the source framework on ``inputs`` (may be empty).
    """

    name: str
    mod: tvm.IRModule
    graphs: list[OpGraph]
    inputs: list[np.ndarray]
    params: list[np.ndarray] = field(default_factory=list)
    reference: list[np.ndarray] = field(default_factory=list)

    @property
    def hash(self) -> str:
        """A stable hash of the fused module (16 hex digits)."""
        h = tvm_ffi.structural_hash(self.mod)
        return f"{int(h) & (2**64 - 1):016x}"

    @property
    def num_nodes(self) -> int:
        return sum(g.num_nodes for g in self.graphs)


def check_target(target: str) -> tvm.target.Target:
    """``tvm.target.Target(target)`` with TVM's complaint turned into a one-line error."""
    try:
        return tvm.target.Target(target)
    except Exception as err:  # noqa: BLE001 - TVM raises several kinds
        first = (str(err).strip().splitlines() or ["invalid target"])[0]
        raise TuneInputError(f"target {target!r} is not valid: {first[:200]}") from None


def _random_inputs(func: relax.Function, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for p in list(func.params)[:count]:
        ty = p.ty  # Relax types (TVM 0.27: ``ty``, formerly ``struct_info``)
        if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
            raise TuneInputError(f"input {p.name_hint} of main is not a tensor of known shape")
        if not all(isinstance(d, tvm.tirx.IntImm) for d in ty.shape.values):
            raise TuneInputError(
                f"input {p.name_hint} of main has a symbolic shape {ty.shape}; give inputs")
        shape = [int(d) for d in ty.shape.values]
        dtype = str(ty.dtype)
        if dtype.startswith(("int", "uint")):
            out.append(rng.integers(0, 8, size=shape).astype(dtype))
        elif dtype == "bool":
            out.append(rng.random(shape) < 0.5)
        else:
            out.append(rng.standard_normal(shape).astype(dtype))
    return out


def _finish(name: str, mod: tvm.IRModule, inputs, params, reference, seed: int) -> TuneModel:
    if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise TuneInputError(f"{name}: the module has no function 'main'")
    if not is_fused(mod):
        mod = prepare(mod)
    graphs = [g for g in extract(mod, "main") if g.num_nodes > 0]
    if not graphs:
        raise TuneInputError(f"{name}: main has no dataflow block with operators to order")
    main = mod["main"]
    attrs = dict(main.attrs) if main.attrs is not None else {}
    num_input = int(attrs.get("num_input", len(main.params)))
    if inputs is None:
        if len(main.params) > num_input and not params:
            raise TuneInputError(f"{name}: main takes {len(main.params) - num_input} weight "
                                 f"parameters; give inputs and params")
        inputs = _random_inputs(main, num_input, seed)
    return TuneModel(name, mod, graphs, [np.asarray(x) for x in inputs],
                     [np.asarray(p) for p in params], [np.asarray(r) for r in reference])


def load_model(*, model: str | None = None, onnx: str | Path | None = None,
               relax_file: str | Path | None = None, seed: int = 0) -> TuneModel:
    """Load exactly one of a zoo model, an ONNX file or a Relax Python file.

    Raises
    ------
    TuneInputError
        Unknown zoo model, unreadable file, no module in the file, a symbolic input shape.
    """
    given = [x for x in (model, onnx, relax_file) if x is not None]
    if len(given) != 1:
        raise TuneInputError("give exactly one of --model, --onnx, --relax")
    if model is not None:
        from tvm_sched import zoo

        if model not in zoo.names():
            raise TuneInputError(f"unknown model {model!r}; known: {', '.join(zoo.names())}")
        imp = zoo.load(model, seed=seed)
        return _finish(model, imp.mod, imp.inputs, imp.params, imp.reference, seed)
    if onnx is not None:
        return _load_onnx(Path(onnx), seed)
    return _load_relax_file(Path(relax_file), seed)


def _load_onnx(path: Path, seed: int) -> TuneModel:
    if not path.is_file():
        raise TuneInputError(f"ONNX file {str(path)!r} does not exist")
    try:
        import onnx
    except ImportError:
        raise TuneInputError("reading ONNX needs the onnx package: pip install 'tvm_sched[onnx]'"
                             ) from None
    try:
        proto = onnx.load(str(path))
        from tvm.relax.frontend.onnx import from_onnx

        mod = from_onnx(proto)
    except Exception as err:  # noqa: BLE001 - protobuf and the importer raise many kinds
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise TuneInputError(f"cannot read ONNX file {str(path)!r}: {first[:200]}") from None
    mod = relax.transform.DecomposeOpsForInference()(mod)
    return _finish(path.stem, mod, None, [], [], seed)


def _load_relax_file(path: Path, seed: int) -> TuneModel:
    if not path.is_file():
        raise TuneInputError(f"Relax file {str(path)!r} does not exist")
    try:
        ns = runpy.run_path(str(path), run_name="tvm_sched_relax_model")
    except Exception as err:  # noqa: BLE001 - user code
        raise TuneInputError(f"running {str(path)!r} failed: {type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200] if str(err) else ''}") from None
    mod = ns.get("mod")
    if not isinstance(mod, tvm.IRModule):
        mods = [v for v in ns.values() if isinstance(v, tvm.IRModule)]
        if len(mods) != 1:
            raise TuneInputError(f"{str(path)!r} must define one IRModule named 'mod' "
                                 f"(found {len(mods)} IRModules)")
        mod = mods[0]
    inputs = ns.get("inputs")
    params = list(ns.get("params") or [])
    name = path.stem
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
    return _finish(f"{name}-{digest}", mod, inputs, params, [], seed)

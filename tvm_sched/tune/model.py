"""What the tuner tunes: a fused Relax module, its operator graphs, inputs and weights.

Three sources, one result (:class:`TuneModel`):

- a zoo model by name (:mod:`tvm_sched.zoo`; weights random but seeded, torch's outputs kept as a
  reference);
- an ONNX file (``tvm.relax.frontend.onnx``; needs the ``onnx`` extra; weights are constants);
- a Python file defining an ``IRModule`` named ``mod`` (or exactly one ``IRModule`` at top level),
  optionally ``inputs`` and ``params`` (lists of numpy arrays for ``main``'s inputs and trailing
  weight parameters).

Inputs that the source does not give are drawn from a seeded generator for ``main``'s static
shapes (:func:`tvm_sched.relax.profile.random_args`: floats N(0, 1), integers 0, the one index
valid for every axis: integer inputs are mostly token ids and types). Every
bad input is a :class:`TuneInputError` raised before anything is written.

A ``--relax`` file is *executed* (``runpy``) with the rights of the user who runs the tuner:
give only files you trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import runpy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi
from tvm import relax

from tvm_sched.errors import TuneInputError, one_line
from tvm_sched.graph import OpGraph
from tvm_sched.relax.extract import extract
from tvm_sched.relax.frontend import LAYOUTS, prepare
from tvm_sched.relax.passes import is_fused

__all__ = ["TuneModel", "load_model", "check_target", "target_key", "source_name",
           "conv_layout"]

log = logging.getLogger(__name__)


def conv_layout(asked: str, kernel_trials: int) -> str:
    """The convolution layout ``--layout asked`` gives a model tuned with ``kernel_trials``.

    ``"auto"`` is NHWC when kernels are tuned: with the channels innermost the tuned kernels
    vectorise over them, and their packed weights (:mod:`tvm_sched.relax.prepack`) are read in
    order. On the bench resnet (AMD EPYC znver4, 2 threads, 320 trials) the tuned VM ran
    2.82 ms in NHWC against 3.6-3.8 ms in NCHW, both with packed weights. Untuned kernels keep
    the model's own layout (NCHW for the zoo, torch and ONNX models): TVM's default kernels were
    not measured in NHWC, and the zero-copy concatenation of the arena (channel concatenation
    of NCHW tensors at batch 1) needs it.

    Parameters
    ----------
    asked
        ``"auto"``, ``"NCHW"`` or ``"NHWC"``.
    kernel_trials
        The kernel tuning budget (0: untuned).

    Returns
    -------
    str
        ``"NCHW"`` or ``"NHWC"``.

    Raises
    ------
    TuneInputError
        Another value.
    """
    if asked == "auto":
        return "NHWC" if kernel_trials > 0 else "NCHW"
    if asked not in LAYOUTS:
        raise TuneInputError(f"--layout must be auto or one of {', '.join(LAYOUTS)}, "
                             f"got {asked!r}")
    return asked


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
    #: Where it came from, for the anchors (:mod:`tvm_sched.tune.anchors`):
    #: ``{"zoo": name, "size": size, "seed": seed}``, ``{"onnx": path}`` or empty.
    source: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """A stable hash of the fused module (16 hex digits)."""
        h = tvm_ffi.structural_hash(self.mod)
        return f"{int(h) & (2**64 - 1):016x}"

    @property
    def num_nodes(self) -> int:
        return sum(g.num_nodes for g in self.graphs)


def _json_form(target: str) -> str | None:
    """The JSON form of a short target string ``"kind -key=value ..."`` (a hint), or None."""
    kind, *opts = target.split()
    attrs: dict[str, object] = {"kind": kind}
    for opt in opts:
        key, sep, value = opt.lstrip("-").partition("=")
        if not opt.startswith("-") or not sep or not key:
            return None
        attrs[key] = int(value) if value.lstrip("-").isdigit() else value
    return json.dumps(attrs)


def check_target(target: str) -> tvm.target.Target:
    """``tvm.target.Target(target)`` with TVM's complaint turned into a one-line error.

    TVM 0.27 takes a kind name (``"llvm"``) or the JSON form
    (``'{"kind": "llvm", "mcpu": "native"}'``); it has no parser for the older short form
    ``"llvm -mcpu=native"``, so that form is rejected with its JSON equivalent in the message.

    Parameters
    ----------
    target
        A target kind name or its JSON form.

    Returns
    -------
    tvm.target.Target
        The parsed target.

    Raises
    ------
    TuneInputError
        TVM rejects the target.
    """
    try:
        return tvm.target.Target(target)
    except Exception as err:  # noqa: BLE001 - TVM raises several kinds
        if " -" in str(target).strip() and (hint := _json_form(str(target))):
            raise TuneInputError(f"target {target!r} is not valid: TVM 0.27 takes a kind name "
                                 f"or JSON; give --target '{hint}'") from None
        raise TuneInputError(f"target {target!r} is not valid: "
                             f"{one_line(err, limit=200)}") from None


def target_key(target: str | tvm.target.Target) -> str:
    """The full target string records are keyed by: ``str`` of the checked target, so that
    ``"llvm"`` and ``tvm.target.Target("llvm")`` share records while targets that differ in any
    attribute do not.

    Parameters
    ----------
    target
        A target string or a parsed target.

    Returns
    -------
    str
        ``str`` of the parsed target.

    Raises
    ------
    TuneInputError
        TVM rejects the target (:func:`check_target`).
    """
    return str(target if isinstance(target, tvm.target.Target) else check_target(target))


def source_name(*, model: str | None = None, onnx: str | Path | None = None,
                relax_file: str | Path | None = None) -> str:
    """The name a model gets in records and the default work dir, without importing it: the zoo
    name, the ONNX file's stem, or the Relax file's stem and the first 8 hex digits of its
    SHA-1 (edits to the file start a new name).

    Parameters
    ----------
    model
        A zoo model name (or a corpus name).
    onnx
        An ONNX file.
    relax_file
        A Python file defining an IRModule ``mod``.

    Returns
    -------
    str
        The model's name.

    Raises
    ------
    TuneInputError
        Not exactly one source, an unknown zoo model, or a file that does not exist.
    """
    given = [x for x in (model, onnx, relax_file) if x is not None]
    if len(given) != 1:
        raise TuneInputError("give exactly one of --model, --onnx, --relax")
    if model is not None:
        from tvm_sched import zoo

        if model not in zoo.names() and model not in zoo.corpus():
            raise TuneInputError(f"unknown model {model!r}; known: {', '.join(zoo.names())}; "
                                 f"the corpus (the vision extra): {', '.join(zoo.corpus())}")
        return model
    path = Path(onnx if onnx is not None else relax_file)
    what = "ONNX file" if onnx is not None else "Relax file"
    if not path.is_file():
        raise TuneInputError(f"{what} {str(path)!r} does not exist"
                             + (" (it is a directory)" if path.is_dir() else ""))
    if onnx is not None:
        return path.stem
    return f"{path.stem}-{hashlib.sha1(path.read_bytes()).hexdigest()[:8]}"


def _random_inputs(func: relax.Function, count: int, seed: int) -> list[np.ndarray]:
    from tvm_sched.relax.profile import random_args

    try:
        return random_args(func, np.random.default_rng(seed), count=count)
    except ValueError as err:
        raise TuneInputError(f"{err}; give inputs") from None


def _finish(name: str, mod: tvm.IRModule, inputs, params, reference, seed: int,
            layout: str | None = None) -> TuneModel:
    if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise TuneInputError(f"{name}: the module has no function 'main'")
    if not is_fused(mod):
        mod = prepare(mod, layout)
    elif layout not in (None, "NCHW"):
        log.warning("%s is already fused: its convolutions keep their layout (not %s)", name,
                    layout)
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
               relax_file: str | Path | None = None, seed: int = 0,
               size: str = "small", layout: str | None = None) -> TuneModel:
    """Load exactly one of a zoo model (at zoo ``size``: ``"small"`` or ``"bench"``), an ONNX
    file or a Relax Python file.

    Parameters
    ----------
    model
        A zoo model name.
    onnx
        An ONNX file (needs the ``onnx`` extra).
    relax_file
        A Python file defining an IRModule ``mod`` (and optionally ``inputs``, ``params``).
    seed
        Seed of the zoo model's weights and of random inputs.
    size
        Zoo size, ``"small"`` or ``"bench"`` (not part of the name at ``"small"``).
    layout
        The convolutions' data layout (:func:`tvm_sched.relax.frontend.prepare`): None or
        ``"NCHW"`` keeps the model's, ``"NHWC"`` (:func:`conv_layout` says when to ask for it).
        A module that is fused already keeps its layout (a warning says so).

    Returns
    -------
    TuneModel
        The prepared module, its graphs, inputs and reference outputs.

    Raises
    ------
    TuneInputError
        Unknown zoo model, unreadable file, no module in the file, a symbolic input shape, an
        unknown layout.
    """
    if layout is not None and layout not in LAYOUTS:
        raise TuneInputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    name = source_name(model=model, onnx=onnx, relax_file=relax_file)
    if model is not None:
        from tvm_sched import zoo

        try:
            imp = zoo.load(model, seed=seed, size=size)
        except ValueError as err:
            raise TuneInputError(str(err)) from None
        name = model if size == "small" else f"{model}-{size}"
        tm = _finish(name, imp.mod, imp.inputs, imp.params, imp.reference, seed, layout)
        tm.source = {"zoo": model, "size": size, "seed": seed}
        return tm
    if onnx is not None:
        tm = _load_onnx(Path(onnx), seed, layout)
        tm.source = {"onnx": str(Path(onnx).resolve())}
        return tm
    return _load_relax_file(Path(relax_file), name, seed, layout)


def _load_onnx(path: Path, seed: int, layout: str | None) -> TuneModel:
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
        raise TuneInputError(f"cannot read ONNX file {str(path)!r}: "
                             f"{one_line(err, limit=200)}") from None
    mod = relax.transform.DecomposeOpsForInference()(mod)
    return _finish(path.stem, mod, None, [], [], seed, layout)


def _load_relax_file(path: Path, name: str, seed: int, layout: str | None) -> TuneModel:
    try:
        ns = runpy.run_path(str(path), run_name="tvm_sched_relax_model")
    except SystemExit as err:  # the file is a script: it must not end our process
        raise TuneInputError(f"running {str(path)!r} stopped it: the file called "
                             f"sys.exit({err.code!r}); a --relax file must define 'mod' and "
                             f"return") from None
    except Exception as err:  # noqa: BLE001 - user code
        raise TuneInputError(f"running {str(path)!r} failed: "
                             f"{one_line(err, limit=200, with_type=True)}") from None
    mod = ns.get("mod")
    if not isinstance(mod, tvm.IRModule):
        mods = [v for v in ns.values() if isinstance(v, tvm.IRModule)]
        if len(mods) != 1:
            raise TuneInputError(f"{str(path)!r} must define one IRModule named 'mod' "
                                 f"(found {len(mods)} IRModules)")
        mod = mods[0]
    inputs = ns.get("inputs")
    params = list(ns.get("params") or [])
    return _finish(name, mod, inputs, params, [], seed, layout)

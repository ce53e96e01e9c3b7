"""Torch frontend: import a ``torch.nn.Module`` as a Relax module, prepare it, run it.

Contract
--------
``from_torch`` returns an :class:`ImportedModule` whose ``main`` takes ``(*inputs, *params)``
(attribute ``num_input``) with the weights detached into ``params``. ``prepare`` lifts the
weight-only work into ``main_transform_params`` and fuses ``main``: this is the module the
scheduler works on. ``run_module`` compiles and runs a module on the CPU for numeric checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from tvm_sched.errors import ExtractionError


@dataclass
class ImportedModule:
    """A Relax module imported from torch, with its weights and a torch reference run.

    Attributes
    ----------
    name
        Model name.
    mod
        The imported IRModule; ``main`` takes ``(*inputs, *params)``.
    params
        Weights in ``main``'s parameter order after the inputs.
    inputs
        Example inputs.
    reference
        Torch's outputs on ``inputs``.
    """

    name: str
    mod: tvm.IRModule
    params: list[np.ndarray] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)
    reference: list[np.ndarray] = field(default_factory=list)


def flatten_values(value) -> list:
    """Leaves of nested lists, tuples and TVM arrays (a VM's outputs), in order.

    Parameters
    ----------
    value
        A leaf or a (nested) sequence; strings are leaves.

    Returns
    -------
    list
        The leaves, depth first; ``[value]`` for a leaf.
    """
    if isinstance(value, (list, tuple, Sequence)) and not isinstance(value, str):
        out = []
        for item in value:
            out.extend(flatten_values(item))
        return out
    return [value]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def from_torch(model, example_args, *, name: str) -> ImportedModule:
    """Import a torch model with ``torch.export`` and the Relax torch frontend.

    Parameters
    ----------
    model
        A ``torch.nn.Module``; put in eval mode.
    example_args
        Tuple of example input tensors.
    name
        Model name recorded in the result.

    Returns
    -------
    ImportedModule

    Raises
    ------
    ExtractionError
        If torch.export or the Relax frontend fails (the cause is chained).
    """
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    args = tuple(example_args)
    model = model.eval()
    try:
        with torch.no_grad():
            reference = [t.detach().cpu().numpy() for t in flatten_values(model(*args))]
            exported = torch.export.export(model, args)
    except Exception as exc:  # torch raises many unrelated types here
        raise ExtractionError(
            f"torch.export failed for {name!r}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    try:
        mod = from_exported_program(
            exported, keep_params_as_input=True, unwrap_unit_return_tuple=True
        )
        mod, params = relax.frontend.detach_params(mod)
    except Exception as exc:
        raise ExtractionError(
            f"Relax import failed for {name!r}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    weights = [p.numpy() for p in params.get("main", [])]
    inputs = [t.detach().cpu().numpy() for t in args]
    return ImportedModule(name=name, mod=mod, params=weights, inputs=inputs, reference=reference)


#: Convolution layouts :func:`prepare` can give a module: data layout -> the weights' layout.
LAYOUTS = {"NCHW": "OIHW", "NHWC": "HWIO"}


def prepare(mod: tvm.IRModule, layout: str | None = None) -> tvm.IRModule:
    """Lift weight-only work out of ``main`` and fuse it (the module the scheduler sees).

    ``LiftTransformParams`` then :func:`tvm_sched.relax.passes.fusion_prefix`, the one fusion
    prefix of tvm_sched (the ``ScheduleOperators`` pass runs the same prefix, without lifting,
    which would change the function's signature inside a user's pipeline).

    With ``layout``, every 2-D convolution computes in that data layout (TVM's
    ``ConvertLayout``; the ops between convolutions follow, and ``main`` keeps its signature:
    a transpose at each end). The weights' change of layout is weight-only work, so it is
    lifted with the rest and runs once, at load. ``"NHWC"`` puts the channels innermost, where
    tuned CPU kernels vectorise over them (:mod:`tvm_sched.tune.model` says when the tuner
    uses it).

    Parameters
    ----------
    mod
        An imported module (``ImportedModule.mod``).
    layout
        None or ``"NCHW"`` (the module's own layouts), or ``"NHWC"``.

    Returns
    -------
    tvm.IRModule
        A new module with ``main_transform_params`` and a fused ``main``.

    Raises
    ------
    ValueError
        An unknown layout.
    """
    from tvm_sched.relax.fold import FoldBatchNormIntoWeights
    from tvm_sched.relax.passes import fusion_prefix

    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    mod = FoldBatchNormIntoWeights(weight_params=True)(mod)
    if layout not in (None, "NCHW"):
        mod = relax.transform.ConvertLayout({"relax.nn.conv2d": [layout, LAYOUTS[layout]]})(mod)
    mod = relax.transform.LiftTransformParams()(mod)
    return fusion_prefix()(mod)


def run_module(
    mod: tvm.IRModule, imported: ImportedModule, *, target="llvm", relax_pipeline=None
) -> list[np.ndarray]:
    """Compile ``mod`` and run it on ``imported``'s inputs and params on the CPU.

    If ``mod`` has ``main_transform_params`` it is run on the params first and its outputs
    are passed to ``main`` in their place. In TVM 0.27 ``main_transform_params`` takes one
    argument, the list of all params, and returns an Array (``main``'s params after inputs).

    Parameters
    ----------
    mod
        The module to compile (imported, prepared or scheduled).
    imported
        Supplies the inputs and params.
    target
        TVM target to compile for; the module runs on ``tvm.cpu()``.
    relax_pipeline
        Relax pipeline (a pass or a registered name) for ``tvm.compile``; default TVM's.

    Returns
    -------
    list of numpy.ndarray
        The outputs of ``main``, flattened.
    """
    kwargs = {} if relax_pipeline is None else {"relax_pipeline": relax_pipeline}
    exe = tvm.compile(mod, target, **kwargs)
    dev = tvm.cpu()
    vm = relax.VirtualMachine(exe, dev)
    params = [tvm.runtime.tensor(p, dev) for p in imported.params]
    if any(gv.name_hint == "main_transform_params" for gv in mod.get_global_vars()):
        params = list(flatten_values(vm["main_transform_params"](params)))
    inputs = [tvm.runtime.tensor(x, dev) for x in imported.inputs]
    out = vm["main"](*inputs, *params)
    return [o.numpy() for o in flatten_values(out)]

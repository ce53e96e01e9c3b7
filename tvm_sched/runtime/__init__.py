"""The lane runtime: run a Relax model's kernels on several lanes (threads) at once.

Public API
----------
``build(mod, target="llvm", schedule=None, *, lanes=None, solver="list", params=None,
engine="auto", threads_per_lane=1, database=None, ...)`` -> :class:`LaneModule`, which has
``__call__(*inputs)`` (numpy or TVM tensors in, a list of numpy outputs out),
``time(number, repeat)`` (median seconds), ``export(path)``; ``load(path, device)`` reads an
exported module back. :class:`LanePlan` is the device-neutral plan (JSON round trip);
:class:`PythonEngine` the reference engine (the native one is
:mod:`tvm_sched.runtime.native_engine`).

Importing this package is cheap (no TVM, no torch): ``build`` and ``load`` import TVM when called.
"""

from __future__ import annotations

from tvm_sched.runtime.engine_python import LaneError, PythonEngine
from tvm_sched.runtime.module import LaneInputError, LaneModule, load
from tvm_sched.runtime.plan import LanePlan, Step, TensorSpec

__all__ = ["build", "load", "LaneModule", "LanePlan", "TensorSpec", "Step", "PythonEngine",
           "LaneError", "LaneInputError", "plan_module"]


def build(mod, target="llvm", schedule=None, **kwargs) -> LaneModule:
    """Build a :class:`LaneModule`; see :func:`tvm_sched.runtime.builder.build`.

    Parameters
    ----------
    mod
        The Relax module.
    target
        TVM target of the kernels.
    schedule
        A lane schedule of the module's graph; ``None``: one is solved.
    **kwargs
        The keyword options of :func:`tvm_sched.runtime.builder.build`.

    Returns
    -------
    LaneModule
        The compiled module, ready to run.
    """
    from tvm_sched.runtime.builder import build as _build

    return _build(mod, target, schedule, **kwargs)


def plan_module(mod, schedule=None, **kwargs) -> LanePlan:
    """The :class:`LanePlan` of a fused module; see :func:`tvm_sched.runtime.lower.plan_module`.

    Parameters
    ----------
    mod
        A fused Relax module.
    schedule
        A lane schedule of its graph; ``None``: one is solved.
    **kwargs
        The keyword options of :func:`tvm_sched.runtime.lower.plan_module`.

    Returns
    -------
    LanePlan
        The device-neutral plan.
    """
    from tvm_sched.runtime.lower import plan_module as _plan

    return _plan(mod, schedule, **kwargs)

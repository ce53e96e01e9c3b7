"""Solvers: one calling convention, one registry (see :mod:`tvm_sched.solvers.base`).

Solver modules are imported lazily by the registry; importing this package does not import
OR-Tools or torch. The GFlowNet's public helpers (``load_checkpoint``, ``sample_schedules``,
``train_gflownet``) are imported -- with torch -- on first use.
"""

from tvm_sched.solvers.base import (
    Candidate,
    Deadline,
    Proposal,
    Solver,
    SolveResult,
    Status,
    resolve_device,
)
from tvm_sched.solvers.registry import (
    check_solver_names,
    get_solver,
    register,
    solve,
    solver_class,
    solver_names,
)

__all__ = [
    "Candidate", "Deadline", "Proposal", "SolveResult", "Solver", "Status", "resolve_device",
    "check_solver_names", "get_solver", "register", "solve", "solver_class", "solver_names",
    "load_checkpoint", "sample_schedules", "train_gflownet",
]

_LAZY = {
    "load_checkpoint": ("tvm_sched.solvers.gflownet.checkpoint", "load_checkpoint"),
    "sample_schedules": ("tvm_sched.solvers.gflownet.solver", "sample_schedules"),
    "train_gflownet": ("tvm_sched.solvers.gflownet.train", "main"),
}


def __getattr__(name: str):
    """The torch-backed GFlowNet helpers, imported when first asked for (PEP 562)."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

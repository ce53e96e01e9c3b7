"""Solvers: one calling convention, one registry (see :mod:`tvm_sched.solvers.base`).

Solver modules are imported lazily by the registry; importing this package does not import
OR-Tools or torch.
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
from tvm_sched.solvers.registry import get_solver, register, solve, solver_class, solver_names

__all__ = [
    "Candidate", "Deadline", "Proposal", "SolveResult", "Solver", "Status", "resolve_device",
    "get_solver", "register", "solve", "solver_class", "solver_names",
]

"""The exact CP-SAT solver (``"cpsat"``): OR-Tools CP-SAT models of the three objectives.

Importing this package imports OR-Tools; :mod:`tvm_sched.solvers.registry` does so only when
``"cpsat"`` is requested and turns a missing ``ortools`` into
:class:`~tvm_sched.errors.SolverUnavailableError`.
"""

from tvm_sched.solvers.cpsat.solver import CPSATSolver

__all__ = ["CPSATSolver"]

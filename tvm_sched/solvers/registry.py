"""One registry of solvers by name, with lazy imports.

The pass, the tuner, the CLI and the benchmarks all pick solvers here, by the names of DESIGN.md.
A solver's module is imported only when the solver is asked for, so ``import tvm_sched`` never
pulls in OR-Tools or torch; a missing optional package becomes a
:class:`~tvm_sched.errors.SolverUnavailableError` with an install hint.

Examples
--------
>>> from tvm_sched.graph import OpGraph
>>> res = solve(OpGraph(3, [(0, 2), (1, 2)]), "makespan", solver="list", lanes=2)
>>> res.value, res.proven
(2.0, True)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from tvm_sched.cost import Objective, make_objective
from tvm_sched.errors import SolverUnavailableError, UnknownSolverError
from tvm_sched.graph import OpGraph
from tvm_sched.solvers.base import Solver, SolveResult

__all__ = ["register", "get_solver", "solver_names", "check_solver_names", "solve",
           "solver_class"]

# name -> "module:Class" (lazy) or a class (registered at run time)
_REGISTRY: dict[str, str | type[Solver]] = {
    "tvm": "tvm_sched.solvers.heuristics:ProgramOrderSolver",
    "topo-dfs": "tvm_sched.solvers.heuristics:TopoDFSSolver",
    "topo-bfs": "tvm_sched.solvers.heuristics:TopoBFSSolver",
    "list": "tvm_sched.solvers.heuristics:ListSolver",
    "lpmf": "tvm_sched.solvers.heuristics:LPMFSolver",
    "random": "tvm_sched.solvers.heuristics:RandomSolver",
    "random-list": "tvm_sched.solvers.heuristics:RandomListSolver",
    "cpsat": "tvm_sched.solvers.cpsat:CPSATSolver",
    "gaus": "tvm_sched.solvers.gaus:GauSSolver",
    "gumbel": "tvm_sched.solvers.gumbel:GumbelSolver",
    "gflownet": "tvm_sched.solvers.gflownet:GFlowNetSolver",
}

_INSTALL_HINT = {
    "ortools": "pip install 'ortools>=9.15,<9.16'",
    "torch": "pip install torch==2.13.0",
}


def register(name: str, cls: type[Solver] | None = None):
    """Register a solver class under ``name`` (usable as a decorator).

    Parameters
    ----------
    name
        The registry name; an existing entry of that name is replaced.
    cls
        The class; omitted, ``register(name)`` returns a class decorator.

    Returns
    -------
    type or Callable
        ``cls`` when given, else the decorator (which returns the class it decorates).

    Raises
    ------
    TypeError
        The class is not a subclass of :class:`~tvm_sched.solvers.base.Solver`.
    """

    def deco(c: type[Solver]) -> type[Solver]:
        if not (isinstance(c, type) and issubclass(c, Solver)):
            raise TypeError(f"{c!r} is not a Solver subclass")
        _REGISTRY[name] = c
        return c

    return deco(cls) if cls is not None else deco


def solver_names() -> list[str]:
    """All registered solver names, in registration order.

    Returns
    -------
    list of str
        The built-in names first, then those added with :func:`register`.
    """
    return list(_REGISTRY)


def check_solver_names(names: Iterable[str]) -> None:
    """Check that every name is a registered solver, without importing any solver's module.

    Parameters
    ----------
    names
        Solver names.

    Raises
    ------
    UnknownSolverError
        The first name that is not registered (the message lists the known ones).
    """
    for name in names:
        if name not in _REGISTRY:
            raise UnknownSolverError(
                f"unknown solver {name!r}; choose one of: {', '.join(_REGISTRY)}")


def solver_class(name: str) -> type[Solver]:
    """The class registered under ``name``.

    Imports the solver's module the first time.

    Parameters
    ----------
    name
        A registered solver name.

    Returns
    -------
    type
        The :class:`~tvm_sched.solvers.base.Solver` subclass.

    Raises
    ------
    UnknownSolverError
        No solver has that name (the message lists the known ones).
    SolverUnavailableError
        The solver needs a package that is not installed.
    """
    check_solver_names([name])
    entry = _REGISTRY[name]
    if isinstance(entry, type):
        return entry
    module, _, cls_name = entry.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None) or ""
        hint = _INSTALL_HINT.get(missing.split(".")[0], f"pip install {missing}")
        raise SolverUnavailableError(
            f"solver {name!r} needs the {missing!r} package, which is not importable: {hint}"
        ) from err
    cls = getattr(mod, cls_name)
    _REGISTRY[name] = cls
    return cls


def get_solver(name: str, **options: Any) -> Solver:
    """An instance of the solver ``name`` configured with ``options`` (its ``Config`` fields).

    Parameters
    ----------
    name
        A registered solver name.
    **options
        Fields of the solver's ``Config``.

    Returns
    -------
    Solver
        A new instance.

    Raises
    ------
    UnknownSolverError
        No solver has that name.
    SolverUnavailableError
        The solver needs a package that is not installed.
    TypeError
        An option is not a field of the solver's ``Config``.
    """
    return solver_class(name)(**options)


def solve(
    graph: OpGraph,
    objective: Objective | str = "makespan",
    *,
    solver: str = "list",
    budget: float | None = None,
    seed: int = 0,
    device: Any = "cpu",
    lanes: int | None = None,
    **options: Any,
) -> SolveResult:
    """Solve with the solver named ``solver``; see :meth:`Solver.solve`.

    ``lanes`` is a shortcut for ``make_objective(objective, lanes=lanes)``; other keywords
    configure the solver.

    Parameters
    ----------
    graph
        The graph to schedule.
    objective
        An objective or its name.
    solver
        A registered solver name.
    budget
        Wall-clock seconds; ``None``: the solver's own stopping rule.
    seed
        Seed of every random choice.
    device
        Where tensor solvers run.
    lanes
        Lanes of a named objective (or a check on a given one).
    **options
        Fields of the solver's ``Config``.

    Returns
    -------
    SolveResult
        See :meth:`~tvm_sched.solvers.base.Solver.solve`.

    Raises
    ------
    ValueError
        ``lanes`` contradicts a given objective, or as :meth:`Solver.solve` and
        :func:`~tvm_sched.cost.make_objective` do.
    UnknownSolverError, SolverUnavailableError, TypeError
        As :func:`get_solver`.
    """
    if isinstance(objective, str):
        objective = make_objective(objective, lanes=lanes)
    elif lanes is not None and lanes != objective.lanes:
        raise ValueError(f"lanes={lanes} contradicts the objective's {objective.lanes} lanes")
    return get_solver(solver, **options).solve(
        graph, objective, budget=budget, seed=seed, device=device
    )

"""The solver calling convention and its result type.

Every solver is a :class:`Solver` with a frozen ``Config`` dataclass and one method,

    solve(graph, objective, *, budget=None, seed=0, device="cpu") -> SolveResult

which returns candidate schedules best first. ``SolveResult`` is a sequence of schedules (so
``solve(...)[0]`` is the best one) and also carries the values, a proven lower bound, a status and
the time taken. A solver implements :meth:`Solver._propose`; the base class then completes every
candidate with the objective's exact semantics, validates it, re-evaluates it with the exact
evaluator in :mod:`tvm_sched.cost`, checks it against the value and bound the solver claimed
(a contradiction is a :class:`~tvm_sched.errors.SolverError`: a bug, not a result), removes
duplicates and sorts. So every number a solver reports has been re-checked.

An infeasible or timed-out solve is a normal result with a status, not an exception.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from tvm_sched.cost import Objective, make_objective
from tvm_sched.errors import InvalidGraphError, SolverError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule

__all__ = ["Status", "Candidate", "Proposal", "SolveResult", "Solver", "Deadline",
           "resolve_device"]


class Status(enum.StrEnum):
    """Outcome of a solve (string-valued, so it serialises as itself)."""

    OPTIMAL = "OPTIMAL"  # the best value is proven optimal
    FEASIBLE = "FEASIBLE"  # schedules found, optimality not proven
    TIME_LIMIT = "TIME_LIMIT"  # the budget ran out before any schedule was found
    INFEASIBLE = "INFEASIBLE"  # proven to have no schedule


@dataclass(frozen=True)
class Candidate:
    """A schedule as a solver proposes it, with the value it claims (``None``: no claim)."""

    schedule: Schedule
    claimed: float | None = None


@dataclass
class Proposal:
    """What :meth:`Solver._propose` returns."""

    candidates: list[Candidate]
    status: Status = Status.FEASIBLE
    bound: float | None = None  # a proven lower bound, if the solver has one
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SolveResult(Sequence[Schedule]):
    """Schedules best first, their exact values, a proven bound, a status and the time taken."""

    solver: str
    objective: Objective
    schedules: tuple[Schedule, ...]
    values: tuple[float, ...]
    bound: float
    status: Status
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The best value (``inf`` when no schedule was found)."""
        return self.values[0] if self.values else float("inf")

    @property
    def best(self) -> Schedule:
        if not self.schedules:
            raise IndexError(f"{self.solver} found no schedule (status {self.status})")
        return self.schedules[0]

    @property
    def proven(self) -> bool:
        return self.status is Status.OPTIMAL

    def __len__(self) -> int:
        return len(self.schedules)

    def __getitem__(self, i):  # type: ignore[override]
        return self.schedules[i]

    def __iter__(self) -> Iterator[Schedule]:
        return iter(self.schedules)

    def to_dict(self, *, all_schedules: bool = False) -> dict[str, Any]:
        scheds = self.schedules if all_schedules else self.schedules[:1]
        return {
            "solver": self.solver,
            "objective": self.objective.to_dict(),
            "value": self.value if self.schedules else None,
            "bound": self.bound,
            "proven": self.proven,
            "status": str(self.status),
            "seconds": self.seconds,
            "schedule": self.schedules[0].to_dict() if self.schedules else None,
            **({"schedules": [s.to_dict() for s in scheds],
                "values": list(self.values)} if all_schedules else {}),
            "info": self.info,
        }


class Deadline:
    """A wall-clock budget; ``None`` means unlimited."""

    def __init__(self, seconds: float | None):
        if seconds is not None and not seconds >= 0:
            raise ValueError(f"budget must be >= 0 seconds, got {seconds!r}")
        self.seconds = seconds
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def remaining(self) -> float:
        return float("inf") if self.seconds is None else max(0.0, self.seconds - self.elapsed)

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds


def resolve_device(device: Any) -> Any:
    """``"auto"`` -> CUDA when torch sees a GPU, else CPU; other values pass through.

    torch is imported only when ``"auto"`` is asked for, so numpy solvers stay torch-free.
    """
    if device == "auto":
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _rel_tol(x: float) -> float:
    return 1e-6 * max(1.0, abs(x))


class Solver:
    """Base class of all solvers. Subclasses set ``name``, ``objectives`` and ``Config``."""

    name: ClassVar[str] = ""
    #: Objective names this solver handles.
    objectives: ClassVar[tuple[str, ...]] = ("makespan", "peak_memory", "planned_memory", "stage")

    @dataclass(frozen=True)
    class Config:
        """Solver options; subclasses define their own."""

        #: How many distinct schedules to return at most (best first).
        top_k: int = 1

    def __init__(self, config: Any = None, **options: Any):
        if config is None:
            try:
                config = self.Config(**options)
            except TypeError as err:
                known = ", ".join(f.name for f in fields(self.Config)) or "none"
                raise TypeError(f"solver {self.name!r}: {err} (options: {known})") from err
        elif options:
            config = replace(config, **options)
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def supports(self, objective: Objective) -> bool:
        return objective.name in self.objectives

    def _propose(
        self,
        graph: OpGraph,
        objective: Objective,
        deadline: Deadline,
        rng: np.random.Generator,
        device: Any,
    ) -> Proposal:
        raise NotImplementedError

    def solve(
        self,
        graph: OpGraph,
        objective: Objective | str = "makespan",
        *,
        budget: float | None = None,
        seed: int = 0,
        device: Any = "cpu",
    ) -> SolveResult:
        """Propose schedules, re-check each with the exact evaluator, return them best first.

        Parameters
        ----------
        graph
            Any DAG.
        objective
            An :class:`~tvm_sched.cost.Objective` or its name (default options).
        budget
            Wall-clock seconds (``None``: the solver's own stopping rule).
        seed
            Seed of every random choice; the same seed gives the same schedules.
        device
            Where tensor solvers run (``"cpu"``, ``"cuda"``, ``"auto"``); numpy solvers ignore it.

        Raises
        ------
        ValueError
            The solver does not handle this objective.
        SolverError
            A proposed value contradicts the exact evaluator or a proven bound (a bug).
        """
        if not isinstance(graph, OpGraph):
            raise InvalidGraphError(f"solve() needs an OpGraph, got {type(graph).__name__}")
        objective = make_objective(objective)
        if not self.supports(objective):
            raise ValueError(
                f"solver {self.name!r} does not handle the {objective.name!r} objective "
                f"(it handles: {', '.join(self.objectives)})"
            )
        deadline = Deadline(budget)
        rng = np.random.default_rng(seed)
        proposal = self._propose(graph, objective, deadline, rng, resolve_device(device))
        return self._finish(graph, objective, proposal, deadline)

    def _finish(
        self, graph: OpGraph, objective: Objective, proposal: Proposal, deadline: Deadline
    ) -> SolveResult:
        scored: dict[tuple, tuple[float, Schedule]] = {}
        for cand in proposal.candidates:
            full = objective.complete(graph, cand.schedule)
            value = objective.value(graph, full)
            if cand.claimed is not None and value > cand.claimed + _rel_tol(cand.claimed):
                raise SolverError(
                    f"solver {self.name!r} claimed {objective.name} = {cand.claimed:g} but the "
                    f"exact evaluator gives {value:g}"
                )
            key = (full.order, full.start, full.lane)
            if key not in scored or value < scored[key][0]:
                scored[key] = (value, full)
        ranked = sorted(scored.values(), key=lambda vs: vs[0])[: max(1, self.config.top_k)]
        bound = objective.lower_bound(graph)
        if proposal.bound is not None:
            bound = max(bound, proposal.bound)
        status = proposal.status
        if ranked:
            best = ranked[0][0]
            if best < bound - _rel_tol(bound):
                raise SolverError(
                    f"solver {self.name!r} found {objective.name} = {best:g}, below the proven "
                    f"lower bound {bound:g}"
                )
            if best <= bound + _rel_tol(bound):
                status = Status.OPTIMAL
        elif status in (Status.FEASIBLE, Status.OPTIMAL):
            raise SolverError(f"solver {self.name!r} reported {status} without a schedule")
        return SolveResult(
            solver=self.name,
            objective=objective,
            schedules=tuple(s for _, s in ranked),
            values=tuple(float(v) for v, _ in ranked),
            bound=float(bound),
            status=status,
            seconds=deadline.elapsed,
            info=dict(proposal.info),
        )

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

Budgets (the anytime contract every solver keeps)
-------------------------------------------------
- ``budget=S`` seconds: the solve returns within about ``S`` (the target is ``S + 10% + 0.5 s``
  for start-up) with the best schedules found. Solvers that work in batches size them from a
  measured rate (:class:`Pacer`: a tiny first batch is timed, later batches are sized to fit the
  time left) instead of committing to a fixed batch they cannot finish in time.
- Every solver stops early as soon as its best value meets the objective's proven lower bound
  (``objective.lower_bound(graph)``: critical path / load bound, liveness bound, ...).
- ``budget=None``: a fixed amount of work (``samples``, ``rounds``, ...), never a hidden wall
  clock, so the same seed gives the same schedules whatever the machine load. (CP-SAT is the
  exception: its amount of work is its ``Config.time_limit_s``, as its search is a portfolio of
  threads.)
- Ctrl-C (``KeyboardInterrupt``) during :meth:`Solver.solve` returns the best schedules found
  so far with ``info["interrupted"] = True`` and status ``FEASIBLE`` (``OPTIMAL`` only if the
  best meets the lower bound). Solvers publish their incumbents with :meth:`Deadline.offer` as
  they improve; with none published yet, the critical-path priority order is returned
  (``info["fallback"] = "priority"``).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from tvm_sched.cost import Objective, make_objective
from tvm_sched.errors import InvalidGraphError, SolverError, TvmSchedError
from tvm_sched.graph import OpGraph, priority_order
from tvm_sched.schedule import Schedule

__all__ = ["Status", "Candidate", "Proposal", "SolveResult", "Solver", "Deadline", "Pacer",
           "resolve_device", "meets_bound", "is_order_memory", "default_samples",
           "schedule_key", "first_of_each"]


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
        """The result as plain data (for JSON reports).

        Parameters
        ----------
        all_schedules
            Also list every schedule and value under ``"schedules"`` and ``"values"``; by
            default only the best schedule is kept (``"schedule"``).

        Returns
        -------
        dict
            Solver, objective, value (``None`` without a schedule), bound, proven, status,
            seconds, schedule and info.
        """
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


T = TypeVar("T")


def schedule_key(schedule: Schedule) -> tuple:
    """What makes two schedules the same: their order, start times and lanes (not ``info``).

    Parameters
    ----------
    schedule
        Any schedule.

    Returns
    -------
    tuple
        ``(order, start, lane)``, hashable.

    Examples
    --------
    >>> schedule_key(Schedule(order=(1, 0), lane=(0, 1)))
    ((1, 0), None, (0, 1))
    """
    return (schedule.order, schedule.start, schedule.lane)


def first_of_each(items: Iterable[T], key: Callable[[T], Hashable]) -> dict[Hashable, list[T]]:
    """``items`` grouped by ``key`` in the order first seen: the first item of each group is the
    one kept, the others are its duplicates.

    Parameters
    ----------
    items
        The items, in the order of preference (the first of equals is kept).
    key
        Their identity (for schedules: :func:`schedule_key`).

    Returns
    -------
    dict
        ``key -> [kept item, duplicates...]`` in the order the keys were first seen.

    Examples
    --------
    >>> first_of_each(["b1", "a1", "b2"], key=lambda s: s[0])
    {'b': ['b1', 'b2'], 'a': ['a1']}
    """
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _default_clock() -> float:
    return time.perf_counter()


class Deadline:
    """A wall-clock budget (``None``: unlimited) and the solver's published incumbents.

    Parameters
    ----------
    seconds
        The budget; ``None`` means no wall-clock limit (the solver does a fixed amount of work).
    clock
        A function returning seconds (tests pass a fake clock); default ``time.perf_counter``.

    Raises
    ------
    ValueError
        ``seconds`` is negative or NaN.

    Examples
    --------
    >>> t = [0.0]
    >>> d = Deadline(2.0, clock=lambda: t[0])
    >>> t[0] = 1.5
    >>> d.remaining, d.expired
    (0.5, False)
    >>> t[0] = 2.0
    >>> d.expired
    True
    """

    def __init__(self, seconds: float | None, clock=None):
        if seconds is not None and not seconds >= 0:
            raise ValueError(f"budget must be >= 0 seconds, got {seconds!r}")
        self.seconds = seconds
        self.clock = clock or _default_clock
        self.start = self.clock()
        #: The latest incumbents a solver published (:meth:`offer`), best first.
        self.incumbents: list[Candidate] = []
        self.incumbent_info: dict[str, Any] = {}

    @property
    def limited(self) -> bool:
        return self.seconds is not None

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    @property
    def remaining(self) -> float:
        return float("inf") if self.seconds is None else max(0.0, self.seconds - self.elapsed)

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds

    def offer(self, candidates: list[Candidate], **info: Any) -> None:
        """Publish the best candidates so far (what a Ctrl-C returns); replaces earlier ones.

        Parameters
        ----------
        candidates
            The incumbents, best first.
        **info
            Entries for the result's ``info`` should the solve be interrupted.
        """
        self.incumbents = list(candidates)
        self.incumbent_info = dict(info)


class Pacer:
    """Sizes batches of work to fit a deadline from the measured rate.

    With an unlimited deadline every batch is ``min(batch, todo)`` (a fixed amount of work).
    With a budget the first batch is ``probe`` units (timed), and each later batch is the largest
    that the last measured time per unit says fits in ``share`` of the time left (at most
    ``batch``); 0 means stop.

    Parameters
    ----------
    deadline
        The deadline.
    batch
        The largest batch.
    probe
        Size of the first (timed) batch under a budget.
    share
        Fraction of the remaining time one batch may take.
    reserve_s
        Seconds kept back for the work after the loop (scoring, re-checking).

    Examples
    --------
    >>> t = [0.0]
    >>> p = Pacer(Deadline(1.0, clock=lambda: t[0]), batch=100, probe=4)
    >>> p.next_size(1000)
    4
    >>> t[0] = 0.04; p.done(4)  # 10 ms per unit measured
    >>> p.next_size(1000)  # half of the 0.96 s left
    48
    >>> t[0] = 1.0; p.done(48)
    >>> p.next_size(1000)
    0
    """

    def __init__(self, deadline: Deadline, batch: int, probe: int = 8, share: float = 0.5,
                 reserve_s: float = 0.0):
        self.deadline, self.batch, self.probe = deadline, max(1, int(batch)), max(1, int(probe))
        self.share, self.reserve_s = share, reserve_s
        self.unit_s: float | None = None
        self.batches = 0
        self._t = deadline.clock()

    def next_size(self, todo: int) -> int:
        """Units to do next (0: stop), given ``todo`` units left.

        Starts the timer that :meth:`done` reads.

        Parameters
        ----------
        todo
            Units of work still wanted.

        Returns
        -------
        int
            The next batch size, at most ``min(batch, todo)``; 0 once nothing is left to do
            or the time (less ``reserve_s``) has run out.
        """
        todo = int(todo)
        if todo <= 0:
            return 0
        d = self.deadline
        self._t = d.clock()
        if not d.limited:
            return min(self.batch, todo)
        left = d.remaining - self.reserve_s
        if left <= 0:
            return 0
        if self.unit_s is None:
            return min(self.probe, self.batch, todo)
        size = int(self.share * left / max(self.unit_s, 1e-12))
        return max(0, min(self.batch, todo, size))

    def done(self, size: int) -> None:
        """Record that ``size`` units were done since :meth:`next_size`.

        Parameters
        ----------
        size
            Units done; 0 or less records nothing.
        """
        if size > 0:
            self.unit_s = max(self.deadline.clock() - self._t, 0.0) / size
            self.batches += 1


def resolve_device(device: Any) -> Any:
    """``"auto"`` -> CUDA when torch sees a GPU, else CPU; other values pass through.

    torch is imported only when ``"auto"`` is asked for, so numpy solvers stay torch-free.

    Parameters
    ----------
    device
        ``"auto"``, or any device a solver accepts (a string or a ``torch.device``).

    Returns
    -------
    Any
        ``"cuda"`` or ``"cpu"`` for ``"auto"``, else ``device`` itself.
    """
    if device == "auto":
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _rel_tol(x: float) -> float:
    # Relative only: values may be seconds of microsecond kernels (an absolute floor of 1e-6
    # would call a schedule 15% above its bound on a 7-us graph "optimal").
    return 1e-9 * abs(x) + 1e-300


def is_order_memory(objective: Objective) -> bool:
    """Whether ``objective`` is a one-lane memory objective evaluated on orders.

    ``peak_memory`` (liveness), ``planned_memory`` (TVM-planner replica) and any other
    order-based ``*_memory`` objective (such as an arena planner) qualify: solvers may search
    with a liveness surrogate and rank by ``objective.evaluate_orders``.

    Parameters
    ----------
    objective
        Any objective.

    Returns
    -------
    bool
        True for :class:`~tvm_sched.cost.PeakMemory` and for order-based one-lane objectives
        whose name ends in ``_memory``.
    """
    from tvm_sched.cost import PeakMemory

    return isinstance(objective, PeakMemory) or (
        objective.order_based and objective.lanes == 1 and objective.name.endswith("_memory"))


def default_samples(samples: int | None, deadline: Deadline, default: int = 1000) -> int:
    """A sampler's sample count: ``samples``, or when None ``default`` without a budget and
    (practically) unlimited with one (the budget then stops the sampling).

    Parameters
    ----------
    samples
        The configured count, or ``None``.
    deadline
        The solve's deadline.
    default
        The count without a budget when ``samples`` is ``None``.

    Returns
    -------
    int
        ``samples``, ``default`` or ``2**62``.
    """
    if samples is not None:
        return int(samples)
    return default if not deadline.limited else 2**62


def meets_bound(value: float, bound: float) -> bool:
    """Whether ``value`` meets the proven lower ``bound`` (a solver may stop searching).

    Relative to the bound, so values in seconds of microsecond kernels keep their precision.

    Parameters
    ----------
    value
        A schedule's exact value.
    bound
        A proven lower bound of the same objective.

    Returns
    -------
    bool
        True when ``value <= bound`` up to a relative tolerance of ``1e-9``.
    """
    return bool(value <= bound + _rel_tol(bound))


class Solver:
    """Base class of all solvers. Subclasses set ``name``, ``objectives`` and ``Config``.

    Parameters
    ----------
    config
        A ``Config`` instance; default ``Config(**options)``.
    **options
        ``Config`` fields, or fields replaced in ``config`` when it is given.

    Raises
    ------
    TypeError
        An option is not a field of the solver's ``Config`` (the message lists the fields).
    """

    name: ClassVar[str] = ""
    #: Objective names this solver handles.
    objectives: ClassVar[tuple[str, ...]] = ("makespan", "peak_memory", "planned_memory",
                                              "arena_memory", "stage")

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

    #: Whether a solver that handles ``peak_memory`` also handles every other order-based memory
    #: objective (see :func:`is_order_memory`): searched as orders, ranked by the objective's
    #: exact ``evaluate_orders``.
    order_memory: ClassVar[bool] = True

    def supports(self, objective: Objective) -> bool:
        """Whether this solver handles ``objective``.

        Parameters
        ----------
        objective
            The objective to be solved.

        Returns
        -------
        bool
            True for a name in ``objectives``, and for any order-based memory objective when
            the solver handles ``peak_memory`` and ``order_memory`` is set.
        """
        return objective.name in self.objectives or (
            self.order_memory and "peak_memory" in self.objectives
            and is_order_memory(objective))

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

        Returns
        -------
        SolveResult
            At most ``config.top_k`` distinct schedules, best first, with their exact values.

        Raises
        ------
        InvalidGraphError
            ``graph`` is not an :class:`~tvm_sched.graph.OpGraph`.
        ValueError
            The solver does not handle this objective, or ``budget`` is negative or NaN.
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
        if budget is not None and budget > 0 and graph.num_nodes:
            # keep back the time _finish will take: one exact evaluation per returned schedule
            t = deadline.clock()
            try:
                objective.evaluate(graph, Schedule(order=graph.topological_order))
            except (TvmSchedError, ValueError):  # e.g. an infeasible pipeline: no reserve
                pass
            reserve = (deadline.clock() - t) * max(1, getattr(self.config, "top_k", 1))
            deadline.seconds = max(0.0, budget - reserve)
        rng = np.random.default_rng(seed)
        try:
            proposal = self._propose(graph, objective, deadline, rng, resolve_device(device))
        except KeyboardInterrupt:
            proposal = self._interrupted(graph, deadline)
        return self._finish(graph, objective, proposal, deadline)

    def _interrupted(self, graph: OpGraph, deadline: Deadline) -> Proposal:
        """The proposal after a Ctrl-C: the published incumbents, else a priority order."""
        info = dict(deadline.incumbent_info, interrupted=True)
        cands = list(deadline.incumbents)
        if not cands:
            cands = [Candidate(Schedule(order=priority_order(graph, graph.bottom_level)))]
            info["fallback"] = "priority"
        return Proposal(cands, Status.FEASIBLE, info=info)

    def _finish(
        self, graph: OpGraph, objective: Objective, proposal: Proposal, deadline: Deadline
    ) -> SolveResult:
        scored: list[tuple[float, Schedule]] = []
        for cand in proposal.candidates:
            full = objective.complete(graph, cand.schedule)
            value = objective.value(graph, full)
            if cand.claimed is not None and value > cand.claimed + _rel_tol(cand.claimed):
                raise SolverError(
                    f"solver {self.name!r} claimed {objective.name} = {cand.claimed:g} but the "
                    f"exact evaluator gives {value:g}"
                )
            scored.append((value, full))
        # the same complete schedule has the same exact value: keep its first proposal
        distinct = [group[0] for group in first_of_each(scored, key=lambda vs: schedule_key(vs[1]))
                    .values()]
        ranked = sorted(distinct, key=lambda vs: vs[0])[: max(1, self.config.top_k)]
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
            elif proposal.info.get("interrupted") and status is Status.OPTIMAL:
                status = Status.FEASIBLE
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

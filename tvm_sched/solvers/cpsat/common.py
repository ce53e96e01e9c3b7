"""Shared machinery of the CP-SAT models: integer scaling, the solve loop, status mapping.

Contract
--------
Each objective module (:mod:`.makespan`, :mod:`.memory`, :mod:`.stage`) builds a
:class:`CPModel`: an OR-Tools ``CpModel`` whose objective is an *integer* version of the
tvm_sched objective, the variables whose values define a schedule (``watch``), a ``decode``
function from those values to a :class:`~tvm_sched.schedule.Schedule`, the ``divisor`` that turns
the CP objective back into the objective's units, and whether the model is ``exact``.
:func:`run` solves it and returns an :class:`Outcome` whose status is a
:class:`~tvm_sched.solvers.base.Status`.

Integer scaling
---------------
CP-SAT works on integers. :func:`to_integers` keeps integral data as is, and multiplies data
that are all multiples of ``1 / q`` for one integer ``q <= resolution`` (``0.5``, ``0.25``,
``1.5``: ``q = 4``) by ``q``; both are *exact*: CP values divided by the factor are the
objective's values. Other data -- general fractional durations, delays or weights, or integral
data whose sum would exceed ``limit`` -- is multiplied by ``resolution / max(values)`` (or by
``limit / sum`` when that is smaller) and rounded to the nearest integer. A scaled model still
yields valid schedules (the base :class:`~tvm_sched.solvers.base.Solver` re-evaluates each with
the exact evaluator), but its optimum is only near-optimal for the real data: callers then claim
no value, pass no bound and never report ``OPTIMAL``. :func:`to_fraction` does the same for one
real coefficient (the stage cost's ``ratio``) by a rational approximation ``p / q``.

Status mapping
--------------
CP-SAT ``OPTIMAL`` -> ``OPTIMAL`` (``FEASIBLE`` when the model is scaled), ``FEASIBLE`` ->
``FEASIBLE``, ``INFEASIBLE`` -> ``INFEASIBLE``, ``UNKNOWN`` (no solution within the time limit)
-> ``TIME_LIMIT``; ``MODEL_INVALID`` is a bug and raises :class:`~tvm_sched.errors.SolverError`.

References: the OR-Tools CP-SAT solver (Perron, Didier, Gay: "The CP-SAT-LP solver", CP 2023);
the split of a model into variables / constraints / objective follows PyJobShop.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from tvm_sched.errors import SolverError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Status

__all__ = [
    "DEFAULT_LIMIT",
    "Scaled",
    "to_integers",
    "to_fraction",
    "CPModel",
    "Outcome",
    "run",
    "map_status",
    "integer_levels",
    "add_hints",
]

#: Largest sum of scaled values kept exact (CP-SAT works in int64; keep a wide margin).
DEFAULT_LIMIT = 2**50


@dataclass(frozen=True)
class Scaled:
    """Integer data for a CP model: ``values ≈ factor * original`` (equal when ``exact``)."""

    values: np.ndarray
    factor: float
    exact: bool


def to_integers(values: np.ndarray, resolution: int, limit: int = DEFAULT_LIMIT) -> Scaled:
    """Integer version of non-negative ``values`` (see the module docstring).

    Parameters
    ----------
    values
        Non-negative finite numbers.
    resolution
        The largest common denominator tried for exact scaling, and the value the largest entry
        becomes when the data must be rounded.
    limit
        Data whose scaled sum would exceed this is rounded to fit.

    Returns
    -------
    Scaled
        int64 values, the factor applied and whether the scaling is exact.

    Examples
    --------
    >>> to_integers(np.array([1.0, 4.0]), 1000)
    Scaled(values=array([1, 4]), factor=1.0, exact=True)
    >>> to_integers(np.array([0.5, 1.25]), 1000)
    Scaled(values=array([2, 5]), factor=4.0, exact=True)
    >>> s = to_integers(np.array([1.0, 2 ** 0.5]), 1000)
    >>> s.values.tolist(), s.exact
    ([707, 1000], False)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return Scaled(np.zeros(0, dtype=np.int64), 1.0, True)
    total = float(v.sum())
    q = _common_denominator(v, resolution)
    if q is not None and total * q <= limit:
        return Scaled(np.round(v * q).astype(np.int64), float(q), True)
    vmax = float(v.max())
    factor = resolution / vmax
    if total * factor > limit:
        factor = limit / total
    return Scaled(np.round(v * factor).astype(np.int64), factor, False)


def _common_denominator(v: np.ndarray, resolution: int) -> int | None:
    """Least ``q <= resolution`` making every ``q * v`` an integer (to 1e-9), else ``None``."""
    if np.all(v == np.round(v)):
        return 1
    q = 1
    for x in np.unique(v[v != np.round(v)]).tolist():
        den = Fraction(x).limit_denominator(resolution).denominator
        q = q * den // math.gcd(q, den)
        if q > resolution:
            return None
    qv = v * q
    if np.all(np.abs(qv - np.round(qv)) <= 1e-9 * np.maximum(1.0, qv)):
        return q
    return None


def to_fraction(x: float, max_denominator: int) -> tuple[int, int, bool]:
    """``(p, q, exact)`` with ``p / q ≈ x`` and ``q <= max_denominator``.

    ``exact`` means ``|p / q - x| <= 1e-12 |x|``: the rational is the float ``x`` up to its own
    rounding (``0.1`` gives ``(1, 10, True)``).

    Parameters
    ----------
    x
        The number to approximate.
    max_denominator
        The largest denominator allowed (at least 1 is used).

    Returns
    -------
    tuple of (int, int, bool)
        Numerator, denominator and whether the fraction equals ``x``.

    Examples
    --------
    >>> to_fraction(100.0, 1000), to_fraction(0.25, 1000), to_fraction(math.pi, 10)[2]
    ((100, 1, True), (1, 4, True), False)
    """
    f = Fraction(x).limit_denominator(max(1, int(max_denominator)))
    exact = abs(float(f) - x) <= 1e-12 * abs(x)
    return f.numerator, f.denominator, exact


def integer_levels(graph: OpGraph, dur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top levels (earliest starts) and bottom levels (own duration included), integer ``dur``.

    Parameters
    ----------
    graph
        The graph.
    dur
        Integer duration per node (scaled by :func:`to_integers`).

    Returns
    -------
    tuple of numpy.ndarray
        ``(top, bottom)``, int64 per node.
    """
    n = graph.num_nodes
    top = np.zeros(n, dtype=np.int64)
    bottom = np.asarray(dur, dtype=np.int64).copy()
    preds, succs = graph.pred_lists, graph.succ_lists
    topo = graph.topological_order.tolist()
    for v in topo:
        p = preds[v]
        if p:
            top[v] = max(int(top[u] + dur[u]) for u in p)
    for v in reversed(topo):
        s = succs[v]
        if s:
            bottom[v] += max(int(bottom[c]) for c in s)
    return top, bottom


def add_hints(model: cp_model.CpModel, variables: Sequence[Any], values: Sequence[Any]) -> None:
    """``model.add_hint`` for many (non-negated) variables at once: one proto extend per list.

    Parameters
    ----------
    model
        The CP model.
    variables
        Its (non-negated) variables.
    values
        One hint value per variable (converted to ``int``).
    """
    hint = model.proto.solution_hint
    hint.vars.extend([v.index for v in variables])
    hint.values.extend([int(x) for x in values])


@dataclass
class CPModel:
    """A built CP model and how to read schedules back (see the module docstring)."""

    model: cp_model.CpModel
    watch: list[Any]
    decode: Callable[[np.ndarray], Schedule]
    divisor: float = 1.0
    exact: bool = True
    #: The heuristic schedule the model was warm-started from (a fallback result).
    warm: Schedule | None = None
    #: CP-SAT parameters this model wants set (on top of time limit, workers, seed, log).
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = np.array([v.index for v in self.watch], dtype=np.int64)

    def values(self, solution: Sequence[int]) -> np.ndarray:
        """Values of ``watch`` in a full CP-SAT solution vector.

        Parameters
        ----------
        solution
            The value of every model variable, by variable index.

        Returns
        -------
        numpy.ndarray
            int64, one per watched variable.
        """
        return np.asarray(solution, dtype=np.int64)[self._index]


@dataclass
class Outcome:
    """What one CP-SAT run produced: solutions best last, each ``(watch values, objective)``."""

    status: Status
    cp_status: str
    solutions: list[tuple[np.ndarray, float]]
    bound: float | None
    info: dict[str, Any]


class _Collector(cp_model.CpSolverSolutionCallback):
    """Keeps the last ``keep`` improving solutions."""

    def __init__(self, cpm: CPModel, keep: int):
        super().__init__()
        self._cpm = cpm
        self._keep = keep
        self.solutions: list[tuple[np.ndarray, float]] = []

    def on_solution_callback(self) -> None:
        vals = self._cpm.values(self.response_proto.solution)
        self.solutions.append((vals, float(self.objective_value)))
        if len(self.solutions) > self._keep:
            del self.solutions[0]


def map_status(cp_status: Any, exact: bool) -> Status:
    """The tvm_sched status of a CP-SAT status (see the module docstring).

    Parameters
    ----------
    cp_status
        A CP-SAT solve status.
    exact
        Whether the model's data is exact (unscaled): only then is ``OPTIMAL`` optimal.

    Returns
    -------
    Status
        ``OPTIMAL`` (or ``FEASIBLE`` when not exact), ``FEASIBLE``, ``INFEASIBLE`` or
        ``TIME_LIMIT`` (for ``UNKNOWN``).

    Raises
    ------
    SolverError
        On ``MODEL_INVALID`` (or any status this module does not know).
    """
    if cp_status == cp_model.OPTIMAL:
        return Status.OPTIMAL if exact else Status.FEASIBLE
    if cp_status == cp_model.FEASIBLE:
        return Status.FEASIBLE
    if cp_status == cp_model.INFEASIBLE:
        return Status.INFEASIBLE
    if cp_status == cp_model.UNKNOWN:
        return Status.TIME_LIMIT
    raise SolverError(f"CP-SAT returned {cp_status!r}: the model built by tvm_sched is invalid")


def run(
    cpm: CPModel,
    *,
    time_limit_s: float,
    num_workers: int,
    seed: int,
    log: bool = False,
    top_k: int = 1,
) -> Outcome:
    """Solve ``cpm`` and collect up to ``top_k`` solutions (the best last).

    A time limit ``<= 0`` does not start CP-SAT: the outcome is ``TIME_LIMIT`` (``NOT_RUN``).

    Parameters
    ----------
    cpm
        The built model; its ``params`` are set on the solver first.
    time_limit_s
        CP-SAT's ``max_time_in_seconds``.
    num_workers
        Search threads (at least 1).
    seed
        CP-SAT's random seed.
    log
        Print CP-SAT's search log.
    top_k
        Improving solutions to keep (the last ones found).

    Returns
    -------
    Outcome
        Status, CP-SAT's status name, the solutions best last, the bound in the original units
        (``None`` for a scaled model) and run statistics (``interrupted`` after a Ctrl-C).

    Raises
    ------
    SolverError
        CP-SAT found the model invalid (the message carries its validation text).
    """
    if not time_limit_s > 0:
        info = {"cp_status": "NOT_RUN", "wall_s": 0.0, "scaled": not cpm.exact,
                "num_conflicts": 0, **cpm.stats}
        return Outcome(Status.TIME_LIMIT, "NOT_RUN", [], None, info)
    solver = cp_model.CpSolver()
    p = solver.parameters
    for key, value in cpm.params.items():
        setattr(p, key, value)
    p.max_time_in_seconds = float(time_limit_s)
    p.num_workers = max(1, int(num_workers))
    p.random_seed = int(seed)
    p.log_search_progress = bool(log)
    collector = _Collector(cpm, top_k) if top_k > 1 else None
    status, interrupted = _solve_interruptibly(solver, cpm.model, collector)
    name = solver.status_name(status)
    if status == cp_model.MODEL_INVALID:
        raise SolverError(f"CP-SAT rejected the model: {cpm.model.validate() or name}")
    mapped = map_status(status, cpm.exact)
    solutions: list[tuple[np.ndarray, float]] = []
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        final = (cpm.values(solver.response_proto.solution), float(solver.objective_value))
        solutions = list(collector.solutions) if collector else []
        if not solutions or solutions[-1][1] != final[1]:
            solutions.append(final)
        solutions = solutions[-max(1, top_k):]
    bound = None
    if cpm.exact and status in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        b = float(solver.best_objective_bound)
        if math.isfinite(b):
            bound = b / cpm.divisor
    info = {
        "cp_status": name,
        "wall_s": float(solver.wall_time),
        "scaled": not cpm.exact,
        "num_conflicts": int(solver.num_conflicts),
        **cpm.stats,
    }
    if interrupted:
        info["interrupted"] = True
    return Outcome(mapped, name, solutions, bound, info)


def _solve_interruptibly(solver, model, collector) -> tuple[Any, bool]:
    """``solver.solve`` in a worker thread; Ctrl-C stops the search and is reported.

    CP-SAT's own SIGINT handler (``catch_sigint_signal``) would stop the search silently and the
    result would look complete, so it is switched off: the main thread waits, and a
    ``KeyboardInterrupt`` there calls ``stop_search`` and returns ``(status, True)``.
    """
    solver.parameters.catch_sigint_signal = False
    box: dict[str, Any] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            box["status"] = solver.solve(model, collector) if collector else solver.solve(model)
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err
        finally:
            finished.set()

    thread = threading.Thread(target=work, name="cpsat-solve", daemon=True)
    thread.start()
    interrupted = False
    while not finished.is_set():
        try:
            finished.wait(0.05)
        except KeyboardInterrupt:
            interrupted = True
            solver.stop_search()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["status"], interrupted

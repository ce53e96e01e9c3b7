"""Objectives: what a solver minimises, with the exact evaluator every reported value goes through.

An objective knows how to

- ``complete`` a schedule: fill in the start times (and lanes) its semantics implies, so that a
  bare order becomes a full schedule -- list decoding for ``makespan``, the order run one kernel
  at a time for ``peak_memory``, the min-max chunking of the order for ``stage``;
- ``evaluate`` a schedule exactly (after validating it);
- ``evaluate_orders``: score many orders of one graph at once (numpy, batched);
- give a ``lower_bound`` for the graph.

Objectives are frozen dataclasses; :func:`make_objective` builds one from a name and keywords,
as the table ``_TABLE`` says (one entry per name: the class, the keywords it takes, those it
ignores, whether it is defined on one lane only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tvm_sched.cost.makespan import Comm, makespan_batch, times_batch
from tvm_sched.cost.memory import memory_lower_bound, peak_memory_batch
from tvm_sched.cost.objective_base import Objective
from tvm_sched.cost.pipeline import Pipeline
from tvm_sched.cost.planned_memory import planned_memory_batch, planned_memory_lower_bound
from tvm_sched.cost.stage import (
    check_stages,
    stage_cost_batch,
    stage_lower_bound,
    stages_from_order,
    stages_from_orders,
)
from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.memory import arena_bytes_batch, arena_lower_bound
from tvm_sched.schedule import Schedule

__all__ = ["Objective", "Makespan", "PeakMemory", "PlannedMemory", "ArenaMemory", "StageCost",
           "make_objective", "OBJECTIVES", "MEMORY_OBJECTIVES"]


@dataclass(frozen=True)
class Makespan(Objective):
    """Makespan on ``lanes`` identical lanes (optionally with communication cost).

    A schedule with lanes is evaluated with chain semantics, one without by list decoding (see
    :mod:`tvm_sched.cost.makespan`).

    Examples
    --------
    >>> g = OpGraph(3, [(0, 2), (1, 2)], duration=[2, 3, 1])
    >>> Makespan(lanes=2).evaluate(g, Schedule(order=(0, 1, 2)))
    4.0
    """

    name: ClassVar[str] = "makespan"
    num_lanes: int = 1
    comm: Comm | None = None

    def __init__(self, lanes: int = 1, comm: Comm | None = None):
        if not isinstance(lanes, int | np.integer) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        object.__setattr__(self, "num_lanes", int(lanes))
        object.__setattr__(self, "comm", None if comm is None or comm.is_zero else comm)

    @property
    def lanes(self) -> int:
        return self.num_lanes

    def complete(self, graph: OpGraph, schedule: Schedule) -> Schedule:
        schedule.validate(graph, lanes=self.num_lanes)
        order = np.asarray(schedule.order, dtype=np.int64)[None]
        if schedule.lane is not None:
            start, lane = times_batch(graph, order, lane=np.asarray(schedule.lane)[None],
                                      lanes=self.num_lanes, comm=self.comm)
        else:
            start, lane = times_batch(graph, order, lanes=self.num_lanes, comm=self.comm)
        return Schedule(order=schedule.order, start=start[0], lane=lane[0], info=schedule.info)

    def value(self, graph: OpGraph, schedule: Schedule) -> float:
        if graph.num_nodes == 0:
            return 0.0
        return float(np.max(np.asarray(schedule.start) + graph.duration))

    def evaluate_orders(self, graph: OpGraph, orders: np.ndarray) -> np.ndarray:
        return makespan_batch(graph, orders, lanes=self.num_lanes, comm=self.comm)

    def lower_bound(self, graph: OpGraph) -> float:
        """``max(critical path, total duration / lanes)`` (communication can only add)."""
        return max(graph.critical_path_length, graph.total_duration / self.num_lanes)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "lanes": self.num_lanes}
        if self.comm is not None:
            d["comm"] = {"a": self.comm.a, "b": self.comm.b}
        return d

    def describe(self) -> str:
        c = f", comm a={self.comm.a:g} b={self.comm.b:g}" if self.comm else ""
        return f"makespan ({self.num_lanes} lanes{c})"


@dataclass(frozen=True)
class PeakMemory(Objective):
    """Liveness peak memory of the order on one lane (see :mod:`tvm_sched.cost.memory`)."""

    name: ClassVar[str] = "peak_memory"
    is_memory: ClassVar[bool] = True

    def complete(self, graph: OpGraph, schedule: Schedule) -> Schedule:
        schedule.validate(graph)
        # One kernel at a time: each node starts when the one before it in the order finishes.
        # (Start times, not step indices: a step index breaks validate() once a duration > 1.)
        start = np.empty(graph.num_nodes)
        t = 0.0
        for v in schedule.order:
            start[v] = t
            t += float(graph.duration[v])
        return Schedule(order=schedule.order, start=start, info=schedule.info)

    def value(self, graph: OpGraph, schedule: Schedule) -> float:
        return float(peak_memory_batch(graph, np.asarray(schedule.order)[None])[0])

    def evaluate_orders(self, graph: OpGraph, orders: np.ndarray) -> np.ndarray:
        return peak_memory_batch(graph, orders).astype(np.float64)

    def lower_bound(self, graph: OpGraph) -> float:
        return float(memory_lower_bound(graph))

    def describe(self) -> str:
        return "peak memory (liveness, 1 lane)"


@dataclass(frozen=True)
class PlannedMemory(PeakMemory):
    """Bytes TVM's static memory planner allocates for the order, one lane.

    See :mod:`tvm_sched.cost.planned_memory`: exact for graphs extracted by
    :func:`tvm_sched.relax.extract.extract`, a model of the planner for any other graph.
    """

    name: ClassVar[str] = "planned_memory"

    def value(self, graph: OpGraph, schedule: Schedule) -> float:
        return float(planned_memory_batch(graph, np.asarray(schedule.order)[None])[0])

    def evaluate_orders(self, graph: OpGraph, orders: np.ndarray) -> np.ndarray:
        return planned_memory_batch(graph, orders).astype(np.float64)

    def lower_bound(self, graph: OpGraph) -> float:
        return float(planned_memory_lower_bound(graph))

    def describe(self) -> str:
        return "planned memory (TVM static planner replica, 1 lane)"


@dataclass(frozen=True)
class ArenaMemory(PeakMemory):
    """Bytes of the one-arena storage plan of the order, one lane.

    The exact evaluator is the deterministic greedy packing of :mod:`tvm_sched.memory.arena`
    (what ``tvm_sched.relax.PlanArena`` allocates, or an upper bound on it when its exact
    packing does better).
    """

    name: ClassVar[str] = "arena_memory"

    def value(self, graph: OpGraph, schedule: Schedule) -> float:
        return float(arena_bytes_batch(graph, np.asarray(schedule.order)[None])[0])

    def evaluate_orders(self, graph: OpGraph, orders: np.ndarray) -> np.ndarray:
        return arena_bytes_batch(graph, orders).astype(np.float64)

    def lower_bound(self, graph: OpGraph) -> float:
        return float(arena_lower_bound(graph))

    def describe(self) -> str:
        return "arena memory (one arena with offsets, 1 lane)"


@dataclass(frozen=True)
class StageCost(Objective):
    """The stage-partition cost (see :mod:`tvm_sched.cost.stage`); ``start`` holds the stage.

    A schedule without ``start`` is split into stages by :func:`stages_from_order`.
    """

    name: ClassVar[str] = "stage"
    stages: int = 10
    ratio: float = 100.0
    weight: str = "out_bytes"

    def __post_init__(self) -> None:
        if not isinstance(self.stages, int | np.integer) or self.stages < 1:
            raise ValueError(f"stages must be a positive integer, got {self.stages!r}")
        if not self.ratio >= 0:
            raise ValueError(f"ratio must be >= 0, got {self.ratio!r}")
        if self.weight not in ("out_bytes", "duration", "flops"):
            raise ValueError(f"unknown stage weight {self.weight!r}")

    def complete(self, graph: OpGraph, schedule: Schedule) -> Schedule:
        schedule.validate(graph, latency=0.0)
        if schedule.start is None:
            s = stages_from_order(graph, np.asarray(schedule.order), num_stages=self.stages,
                                  weight=self.weight)
        else:
            s = check_stages(graph, np.asarray(schedule.start), self.stages)
        pos = schedule.position()
        order = sorted(range(graph.num_nodes), key=lambda v: (s[v], pos[v]))
        return Schedule(order=order, start=s.astype(np.float64), info=schedule.info)

    def value(self, graph: OpGraph, schedule: Schedule) -> float:
        if schedule.start is None:
            raise InvalidScheduleError("a stage schedule needs start (the stage of each node)")
        s = check_stages(graph, np.asarray(schedule.start), self.stages)
        return float(stage_cost_batch(graph, s[None], num_stages=self.stages, ratio=self.ratio,
                                      weight=self.weight)[0])

    def evaluate_orders(self, graph: OpGraph, orders: np.ndarray) -> np.ndarray:
        o = np.asarray(orders, dtype=np.int64)
        if o.ndim == 1:
            o = o[None]
        s = stages_from_orders(graph, o, num_stages=self.stages, weight=self.weight)
        return stage_cost_batch(graph, s, num_stages=self.stages, ratio=self.ratio,
                                weight=self.weight)

    def lower_bound(self, graph: OpGraph) -> float:
        return stage_lower_bound(graph, num_stages=self.stages, ratio=self.ratio,
                                 weight=self.weight)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "stages": self.stages, "ratio": self.ratio,
                "weight": self.weight}

    def describe(self) -> str:
        return f"stage partition (D={self.stages}, ratio={self.ratio:g})"


def _makespan(lanes: int = 1, comm: Comm | tuple[float, float] | None = None) -> Makespan:
    if comm is not None and not isinstance(comm, Comm):
        comm = Comm(*comm)
    return Makespan(lanes=lanes, comm=comm)


@dataclass(frozen=True)
class _Entry:
    """How :func:`make_objective` builds one objective from keywords."""

    build: Callable[..., Objective]
    #: Keywords handed to ``build`` (None: all that are not ignored).
    takes: tuple[str, ...] | None
    #: Keywords of other objectives accepted and dropped (callers pass one set to every name).
    ignores: tuple[str, ...] = ()
    #: Defined on one lane only (``lanes`` must be 1 when given).
    one_lane: bool = False


#: The objectives by name: what each builds and which keywords it takes.
_TABLE: dict[str, _Entry] = {
    "makespan": _Entry(_makespan, ("lanes", "comm"), ignores=("stages", "ratio")),
    "peak_memory": _Entry(PeakMemory, (), ignores=("comm",), one_lane=True),
    "planned_memory": _Entry(PlannedMemory, (), ignores=("comm",), one_lane=True),
    "arena_memory": _Entry(ArenaMemory, (), ignores=("comm",), one_lane=True),
    "stage": _Entry(StageCost, ("stages", "ratio", "weight"), ignores=("lanes", "comm")),
    # ii, lanes, recurrences; see tvm_sched.cost.pipeline
    "pipeline": _Entry(Pipeline, None, ignores=("comm",)),
}

OBJECTIVES = tuple(_TABLE)
#: The order-based memory objectives (one lane).
MEMORY_OBJECTIVES = tuple(name for name, e in _TABLE.items() if e.one_lane)


def make_objective(name: str | Objective, **kw: Any) -> Objective:
    """Build an objective by name.

    Parameters
    ----------
    name
        ``"makespan"`` (keywords ``lanes``, ``comm`` as a :class:`Comm` or ``(a, b)``),
        ``"peak_memory"``, ``"planned_memory"``, ``"arena_memory"`` (``lanes`` must be 1),
        ``"stage"`` (``stages``, ``ratio``, ``weight``) or ``"pipeline"`` (``ii``, ``lanes``,
        ``recurrences``). An :class:`Objective` is returned as is. Keywords that are None are
        left out.

    Raises
    ------
    ValueError
        Unknown name, or keywords that do not apply to it.

    Examples
    --------
    >>> make_objective("makespan", lanes=4).describe()
    'makespan (4 lanes)'
    """
    if isinstance(name, Objective):
        return name
    entry = _TABLE.get(name)
    if entry is None:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    kw = {k: v for k, v in kw.items() if v is not None and k not in entry.ignores}
    if entry.one_lane:
        lanes = kw.pop("lanes", 1)
        if lanes != 1:
            raise ValueError(f"{name} is defined for one lane (an order); got lanes={lanes}")
    if entry.takes is not None:
        unknown = sorted(set(kw) - set(entry.takes))
        if unknown:
            raise ValueError(f"{name} does not take {unknown}")
    return entry.build(**kw)

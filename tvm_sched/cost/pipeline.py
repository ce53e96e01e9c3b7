"""Pipelined (modulo) scheduling: the exact evaluator of the ``pipeline`` objective.

A loop body (the graph) is started every ``II`` steps (the initiation interval). A schedule gives
each node an integer start step ``s_v`` of one iteration; durations are integer steps. It is legal
when

- every graph edge ``u -> v`` holds: ``s_v >= s_u + dur_u``;
- every recurrence edge ``(u, v, k)`` (v of iteration ``i + k`` reads u of iteration ``i``) holds:
  ``s_v + k * II >= s_u + dur_u``;
- in every modulo slot ``r in 0..II-1`` at most ``lanes`` nodes run: node v occupies the slots
  ``(s_v + j) mod II`` for ``j < dur_v`` (a node longer than II occupies a slot several times).

The objective is the *iteration latency* ``max_v (s_v + dur_v)`` at the fixed ``II`` (the
throughput is fixed by ``II``; among legal modulo schedules the shorter prologue is better).
Two bounds make a given ``II`` infeasible: the resource bound ``ceil(sum dur / lanes)`` and the
recurrence bound, the least integer ``II`` for which the constraint graph has no positive cycle
(``max over cycles of sum dur / sum k``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tvm_sched.cost.objective_base import Objective
from tvm_sched.errors import InfeasibleError, InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule

__all__ = ["int_durations", "check_recurrences", "modulo_usage", "check_pipeline",
           "pipeline_latency", "recurrence_bound", "resource_bound", "check_ii",
           "modulo_list_schedule"]


def int_durations(graph: OpGraph) -> np.ndarray:
    """Durations as int64 steps; raises ValueError when one is not an integer."""
    d = graph.duration
    if np.any(d != np.round(d)):
        v = int(np.flatnonzero(d != np.round(d))[0])
        raise ValueError(f"pipeline scheduling needs integer durations; node {v} has {d[v]!r}")
    return d.astype(np.int64)


def check_recurrences(graph: OpGraph, recurrences: Sequence[tuple[int, int, int]]
                      ) -> np.ndarray:
    """Recurrence edges as an (R, 3) int64 array, validated (nodes exist, distance >= 1)."""
    r = np.asarray(list(recurrences), dtype=np.int64).reshape(-1, 3)
    n = graph.num_nodes
    for u, v, k in r.tolist():
        if not (0 <= u < n and 0 <= v < n):
            raise ValueError(f"recurrence edge ({u}, {v}, {k}) names a node outside 0..{n - 1}")
        if k < 1:
            raise ValueError(f"recurrence edge ({u}, {v}, {k}) needs a distance >= 1")
    return r


def _longest_paths(n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """Longest path from a virtual source (all nodes at 0); None on a positive cycle."""
    dist = np.zeros(n)
    for _ in range(n + 1):
        cand = dist[src] + w
        new = dist.copy()
        np.maximum.at(new, dst, cand)
        if np.array_equal(new, dist):
            return dist
        dist = new
    return None


def recurrence_bound(graph: OpGraph, recurrences: Sequence[tuple[int, int, int]]) -> int:
    """Least integer II with no positive cycle through the recurrence edges (1 when none)."""
    r = check_recurrences(graph, recurrences)
    if not len(r):
        return 1
    dur = int_durations(graph)
    src = np.concatenate([graph.src, r[:, 0]])
    dst = np.concatenate([graph.dst, r[:, 1]])
    base = np.concatenate([dur[graph.src], dur[r[:, 0]]]).astype(np.float64)
    dist_k = np.concatenate([np.zeros(graph.num_edges), r[:, 2]]).astype(np.float64)
    lo, hi = 1, max(1, int(dur.sum()))  # II = sum(dur) always suffices (k >= 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if _longest_paths(graph.num_nodes, src, dst, base - dist_k * mid) is None:
            lo = mid + 1
        else:
            hi = mid
    return lo


def resource_bound(graph: OpGraph, lanes: int) -> int:
    """``ceil(sum dur / lanes)`` (at least 1)."""
    return max(1, math.ceil(int(int_durations(graph).sum()) / lanes))


def check_ii(graph: OpGraph, ii: int, lanes: int, recurrences: Sequence[tuple[int, int, int]]
             ) -> None:
    """Raise :class:`InfeasibleError` naming the bound ``ii`` is below."""
    res = resource_bound(graph, lanes)
    if ii < res:
        raise InfeasibleError(f"II={ii} is below the resource bound ceil(sum dur / lanes) = {res}")
    rec = recurrence_bound(graph, recurrences)
    if ii < rec:
        raise InfeasibleError(f"II={ii} is below the recurrence bound {rec} (a cycle through the "
                              "recurrence edges needs sum dur / sum distance <= II)")


def modulo_usage(graph: OpGraph, start: np.ndarray, ii: int) -> np.ndarray:
    """Nodes running in each modulo slot, shape (II,) int64."""
    dur = int_durations(graph)
    s = np.asarray(start, dtype=np.int64)
    use = np.zeros(ii, dtype=np.int64)
    for v in range(graph.num_nodes):
        full, rest = divmod(int(dur[v]), ii)
        use += full
        for j in range(rest):
            use[(s[v] + j) % ii] += 1
    return use


def check_pipeline(graph: OpGraph, start: np.ndarray, *, ii: int, lanes: int,
                   recurrences: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Validate a modulo schedule; return the start steps as int64. Raises InvalidScheduleError."""
    s = np.asarray(start, dtype=np.float64)
    if s.shape != (graph.num_nodes,):
        raise InvalidScheduleError(
            f"need one start step per node ({graph.num_nodes}), got {s.shape}")
    if s.size and (np.any(s != np.round(s)) or np.any(s < 0)):
        v = int(np.flatnonzero((s != np.round(s)) | (s < 0))[0])
        raise InvalidScheduleError(f"node {v} has start {s[v]!r}; need a non-negative integer")
    s = s.astype(np.int64)
    dur = int_durations(graph)
    bad = np.flatnonzero(s[graph.dst] < s[graph.src] + dur[graph.src])
    if bad.size:
        u, v = int(graph.src[bad[0]]), int(graph.dst[bad[0]])
        raise InvalidScheduleError(f"edge {u} -> {v} is violated: {v} starts at {s[v]} before "
                                   f"{u} is done at {s[u] + dur[u]}")
    for u, v, k in check_recurrences(graph, recurrences).tolist():
        if s[v] + k * ii < s[u] + dur[u]:
            raise InvalidScheduleError(
                f"recurrence edge ({u}, {v}, distance {k}) is violated: {v} of iteration i+{k} "
                f"starts at {s[v] + k * ii}, before {u} of iteration i is done at {s[u] + dur[u]}")
    use = modulo_usage(graph, s, ii)
    if use.size and use.max() > lanes:
        r = int(use.argmax())
        raise InvalidScheduleError(f"modulo slot {r} runs {use[r]} nodes; only {lanes} lanes")
    return s


def pipeline_latency(graph: OpGraph, start: np.ndarray) -> float:
    """Iteration latency ``max(start + dur)`` (0 for an empty graph)."""
    if graph.num_nodes == 0:
        return 0.0
    return float(np.max(np.asarray(start, dtype=np.float64) + graph.duration))


def modulo_list_schedule(graph: OpGraph, order: np.ndarray, *, ii: int, lanes: int,
                         recurrences: Sequence[tuple[int, int, int]],
                         rounds: int = 50) -> np.ndarray | None:
    """Modulo list scheduling of ``order`` (a topological order); None when it fails.

    Nodes are placed in order at the earliest step that meets their inputs, the lower bounds
    learnt from violated recurrences, and a free modulo slot (searched over one period). A
    violated recurrence ``(u, v, k)`` raises v's lower bound to ``s_u + dur_u - k II`` and the
    whole order is placed again (at most ``rounds`` times). A heuristic: it can fail at an II
    close to the resource bound (slot fragmentation) even when a legal schedule exists.
    """
    dur = int_durations(graph)
    rec = check_recurrences(graph, recurrences)
    n = graph.num_nodes
    lower = np.zeros(n, dtype=np.int64)
    preds = graph.pred_lists
    for _ in range(rounds):
        s = np.zeros(n, dtype=np.int64)
        use = np.zeros(ii, dtype=np.int64)
        ok = True
        for v in np.asarray(order, dtype=np.int64).tolist():
            t0 = max([int(lower[v])] + [int(s[p] + dur[p]) for p in preds[v]])
            full, rest = divmod(int(dur[v]), ii)
            for t in range(t0, t0 + ii):
                slots = [(t + j) % ii for j in range(rest)]
                extra = np.bincount(slots, minlength=ii) if slots else 0
                if np.all(use + full + extra <= lanes):
                    s[v] = t
                    use += full + extra
                    break
            else:
                ok = False
                break
        if not ok:
            return None
        viol = [(u, v, k) for u, v, k in rec.tolist() if s[v] + k * ii < s[u] + dur[u]]
        if not viol:
            return s
        for u, v, k in viol:
            lower[v] = max(lower[v], s[u] + dur[u] - k * ii)
    return None


# The objective class lives here with its evaluator.


@dataclass(frozen=True)
class Pipeline(Objective):
    """Iteration latency of a modulo schedule at a fixed initiation interval ``ii``.

    ``start`` holds the integer start step of each node; a schedule without ``start`` is placed
    by :func:`modulo_list_schedule` in its order (an :class:`InvalidScheduleError` when that
    fails). ``recurrences`` are ``(u, v, distance)`` triples.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 1), (1, 2)], duration=[1, 1, 1])
    >>> obj = Pipeline(ii=3, lanes=1, recurrences=((2, 0, 1),))
    >>> obj.evaluate(g, Schedule(order=(0, 1, 2)))
    3.0
    """

    name: ClassVar[str] = "pipeline"
    ii: int = 1
    lanes: int = 1  # type: ignore[assignment]
    recurrences: tuple[tuple[int, int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.ii, int | np.integer) or self.ii < 1:
            raise ValueError(f"ii must be a positive integer, got {self.ii!r}")
        if not isinstance(self.lanes, int | np.integer) or self.lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {self.lanes!r}")
        rec = tuple(tuple(int(x) for x in r) for r in self.recurrences)
        if any(len(r) != 3 for r in rec):
            raise ValueError("recurrences are (u, v, distance) triples")
        object.__setattr__(self, "recurrences", rec)

    def check_feasible(self, graph: OpGraph) -> None:
        """Raise :class:`InfeasibleError` when ``ii`` is below the resource or recurrence bound."""
        check_ii(graph, int(self.ii), int(self.lanes), self.recurrences)

    def complete(self, graph: OpGraph, schedule: Schedule) -> Schedule:
        schedule.validate(graph, latency=0.0)
        if schedule.start is None:
            s = modulo_list_schedule(graph, np.asarray(schedule.order), ii=self.ii,
                                     lanes=self.lanes, recurrences=self.recurrences)
            if s is None:
                raise InvalidScheduleError(
                    f"modulo list scheduling of this order fails at II={self.ii}")
        else:
            s = check_pipeline(graph, np.asarray(schedule.start), ii=self.ii, lanes=self.lanes,
                               recurrences=self.recurrences)
        pos = schedule.position()
        order = sorted(range(graph.num_nodes), key=lambda v: (s[v], pos[v]))
        return Schedule(order=order, start=s.astype(np.float64), info=schedule.info)

    def value(self, graph: OpGraph, schedule: Schedule) -> float:
        if schedule.start is None:
            raise InvalidScheduleError("a pipeline schedule needs start (the step of each node)")
        s = check_pipeline(graph, np.asarray(schedule.start), ii=self.ii, lanes=self.lanes,
                           recurrences=self.recurrences)
        return pipeline_latency(graph, s)

    def evaluate_orders(self, graph: OpGraph, orders: np.ndarray) -> np.ndarray:
        o = np.asarray(orders, dtype=np.int64).reshape(-1, graph.num_nodes)
        out = np.full(len(o), np.inf)
        for i, row in enumerate(o):
            s = modulo_list_schedule(graph, row, ii=self.ii, lanes=self.lanes,
                                     recurrences=self.recurrences)
            if s is not None:
                out[i] = pipeline_latency(graph, s)
        return out

    def lower_bound(self, graph: OpGraph) -> float:
        """The critical path (one iteration can never be shorter)."""
        return float(graph.critical_path_length)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ii": int(self.ii), "lanes": int(self.lanes),
                "recurrences": [list(r) for r in self.recurrences]}

    def describe(self) -> str:
        return (f"pipeline (II={self.ii}, {self.lanes} lanes, "
                f"{len(self.recurrences)} recurrence edges)")

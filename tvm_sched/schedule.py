"""``Schedule``: an order of all operators, with optional start times and lane assignment.

- ``order`` is always present: a topological order of all nodes. On one device it *is* the
  schedule (the Relax VM runs kernels one at a time in this order).
- ``lane`` (optional) assigns each node an execution lane; the per-lane chains are ``order``
  filtered by lane, as in "Robust Scheduling with GFlowNets" (a device assignment plus per-device
  chains).
- ``start`` (optional) is a start time -- or, for the stage-partition problem, a stage index.

``order`` is not required to be sorted by ``start``: a GFlowNet trajectory appends nodes to lanes
in any order, so a later-appended node may start earlier on another lane. What is required is
that each lane's chain starts in chain order without overlap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph

__all__ = ["Schedule", "as_orders"]

_TOL = 1e-9


def as_orders(graph: OpGraph, orders) -> np.ndarray:
    """``orders`` as a (B, n) int64 array of node ids of ``graph`` (one order: B = 1).

    The one shape check of every batched evaluator; rows are not checked to be permutations or
    topological (the evaluators' docstrings say what they assume).

    Raises
    ------
    InvalidScheduleError
        Not of shape (B, n) or (n,), or an id outside ``0..n-1``.

    Examples
    --------
    >>> as_orders(OpGraph(3, [(0, 1)]), [2, 0, 1]).tolist()
    [[2, 0, 1]]
    """
    o = np.asarray(orders, dtype=np.int64)
    if o.ndim == 1:
        o = o[None, :]
    n = graph.num_nodes
    if o.ndim != 2 or o.shape[1] != n:
        raise InvalidScheduleError(f"orders must have shape (B, {n}), got {np.shape(orders)}")
    if o.size and (o.min() < 0 or o.max() >= n):
        raise InvalidScheduleError(f"orders hold node ids outside 0..{n - 1}")
    return o


def _tuple(x: Sequence[Any] | np.ndarray | None, cast: type) -> tuple | None:
    if x is None:
        return None
    return tuple(cast(v) for v in np.asarray(x).tolist())


@dataclass(frozen=True)
class Schedule:
    """A (possibly multi-lane, possibly timed) schedule of an :class:`OpGraph`.

    Parameters
    ----------
    order
        Every node exactly once, parents before children.
    start
        Optional start time (or stage index) per node, indexed by node id.
    lane
        Optional lane per node, indexed by node id.
    info
        Free-form provenance (solver name, sample index, ...); not part of equality.

    Examples
    --------
    >>> from tvm_sched.graph import OpGraph
    >>> g = OpGraph(3, [(0, 2), (1, 2)])
    >>> Schedule(order=(1, 0, 2)).validate(g)
    >>> Schedule(order=(2, 0, 1)).validate(g)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tvm_sched.errors.InvalidScheduleError: edge 0 -> 2 ('n0' -> 'n2') is violated: ...
    """

    order: tuple[int, ...]
    start: tuple[float, ...] | None = None
    lane: tuple[int, ...] | None = None
    info: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", _tuple(self.order, int))
        object.__setattr__(self, "start", _tuple(self.start, float))
        object.__setattr__(self, "lane", _tuple(self.lane, int))

    @property
    def num_nodes(self) -> int:
        return len(self.order)

    @property
    def num_lanes(self) -> int:
        """Lanes used (1 when no lanes are assigned)."""
        return (max(self.lane) + 1) if self.lane else 1

    def position(self) -> np.ndarray:
        """``pos[v]`` = index of node v in ``order``."""
        pos = np.empty(len(self.order), dtype=np.int64)
        pos[np.asarray(self.order, dtype=np.int64)] = np.arange(len(self.order))
        return pos

    def chains(self) -> list[list[int]]:
        """Per-lane chains: ``order`` filtered by lane (one chain when no lanes)."""
        if self.lane is None:
            return [list(self.order)]
        chains: list[list[int]] = [[] for _ in range(self.num_lanes)]
        for v in self.order:
            chains[self.lane[v]].append(v)
        return chains

    def validate(
        self,
        graph: OpGraph,
        *,
        latency: float | Sequence[float] | np.ndarray | None = None,
        lanes: int | None = None,
    ) -> None:
        """Check the schedule against ``graph``; raise on the first violation.

        Parameters
        ----------
        graph
            The graph this schedule claims to schedule.
        latency
            Minimum distance ``start[v] - start[u]`` on every edge ``u -> v`` when ``start`` is
            given: the producer's duration by default; ``0`` for stage partitions (same stage
            allowed).
        lanes
            When given, lanes must lie in ``0..lanes-1``.

        Raises
        ------
        InvalidScheduleError
            Names the first problem: not a permutation, a violated edge (order or start times),
            a lane out of range, or two nodes overlapping on one lane.
        """
        n = graph.num_nodes
        order = self.order
        if len(order) != n:
            raise InvalidScheduleError(
                f"the order has {len(order)} entries; the graph has {n} nodes")
        seen = np.zeros(n, dtype=bool)
        for k, v in enumerate(order):
            if not 0 <= v < n:
                raise InvalidScheduleError(f"order[{k}] = {v} is not a node of the graph")
            if seen[v]:
                raise InvalidScheduleError(f"node {v} appears twice in the order")
            seen[v] = True
        pos = self.position()
        names = graph.names
        bad = np.flatnonzero(pos[graph.src] >= pos[graph.dst])
        if bad.size:
            e = int(bad[0])
            u, v = int(graph.src[e]), int(graph.dst[e])
            raise InvalidScheduleError(
                f"edge {u} -> {v} ({names[u]!r} -> {names[v]!r}) is violated: node {v} is at "
                f"position {pos[v]} of the order, before its input {u} at position {pos[u]}"
            )
        if self.lane is not None:
            if len(self.lane) != n:
                raise InvalidScheduleError(f"{len(self.lane)} lanes given for {n} nodes")
            for v, ln in enumerate(self.lane):
                if ln < 0 or (lanes is not None and ln >= lanes):
                    limit = f" (the problem has {lanes} lanes)" if lanes is not None else ""
                    raise InvalidScheduleError(f"node {v} is on lane {ln}{limit}")
        if self.start is None:
            return
        if len(self.start) != n:
            raise InvalidScheduleError(f"{len(self.start)} start times given for {n} nodes")
        start = np.asarray(self.start, dtype=np.float64)
        if not np.all(np.isfinite(start)):
            v = int(np.flatnonzero(~np.isfinite(start))[0])
            raise InvalidScheduleError(f"node {v} has start {start[v]!r}")
        if latency is None:
            lat = graph.duration
        else:
            lat = np.broadcast_to(np.asarray(latency, dtype=np.float64), (n,))
        gap = start[graph.dst] - start[graph.src] - lat[graph.src]
        bad = np.flatnonzero(gap < -_TOL * np.maximum(1.0, np.abs(start[graph.dst])))
        if bad.size:
            e = int(bad[0])
            u, v = int(graph.src[e]), int(graph.dst[e])
            raise InvalidScheduleError(
                f"edge {u} -> {v} ({names[u]!r} -> {names[v]!r}) is violated: node {v} starts at "
                f"{start[v]:g}, before its input {u} is done at {start[u] + lat[u]:g}"
            )
        if self.lane is None:
            return
        dur = graph.duration
        for ln, chain in enumerate(self.chains()):
            for a, b in zip(chain, chain[1:], strict=False):
                if start[b] < start[a] + dur[a] - _TOL * max(1.0, abs(start[b])):
                    raise InvalidScheduleError(
                        f"nodes {a} and {b} overlap on lane {ln}: {b} starts at {start[b]:g} "
                        f"while {a} runs until {start[a] + dur[a]:g}"
                    )

    def is_valid(self, graph: OpGraph, **kw: Any) -> bool:
        try:
            self.validate(graph, **kw)
        except InvalidScheduleError:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"order": list(self.order)}
        if self.start is not None:
            d["start"] = list(self.start)
        if self.lane is not None:
            d["lane"] = list(self.lane)
        if self.info:
            d["info"] = dict(self.info)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schedule:
        try:
            return cls(order=d["order"], start=d.get("start"), lane=d.get("lane"),
                       info=d.get("info") or {})
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidScheduleError(f"malformed schedule document: {err!r}") from err

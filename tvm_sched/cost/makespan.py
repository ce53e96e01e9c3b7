"""Makespan of a schedule on ``m`` identical lanes, optionally with a communication cost.

Two semantics, both append-only on each lane (a node never starts before the node put on its
lane just before it):

(a) **chain** -- the lanes are given (the GFlowNet paper's device assignment + per-device chains):
    nodes are taken in ``order``; node v starts at
    ``max(finish of each parent p + delay(p, v), finish of the previous node on lane[v])``.
(b) **list** -- only the order is given: it is a priority list decoded by the serial rule "start
    each node, in order, on the lane where it can start earliest". Among lanes giving the same
    start the one that became free last is taken (best fit), which keeps earlier-free lanes for
    later nodes. Without communication cost this set of decodings contains an optimal schedule:
    decoding the nodes of any schedule sorted by start never starts a node later.

``delay(p, v) = a * bytes(p -> v) + b`` when p and v are on different lanes, 0 on the same lane.

Everything is evaluated by one batched numpy routine over ``B`` candidates of one graph: a loop
over the ``n`` positions, vectorised over candidates (1,000 orders of a 100-node graph take a few
milliseconds). The scalar functions call it with ``B = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import as_orders

__all__ = [
    "Comm",
    "padded_preds",
    "chain_times",
    "list_times",
    "times_batch",
    "makespan_chain",
    "makespan_list",
    "makespan_batch",
]


@dataclass(frozen=True)
class Comm:
    """Communication model: an edge between lanes delays its consumer by ``a·bytes + b``.

    Examples
    --------
    >>> Comm(a=1e-3, b=0.5).delay(np.array([0, 1000]))
    array([0.5, 1.5])
    """

    a: float = 0.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if not (self.a >= 0 and self.b >= 0):
            raise ValueError(f"communication cost must be >= 0, got a={self.a}, b={self.b}")

    @property
    def is_zero(self) -> bool:
        return self.a == 0 and self.b == 0

    def delay(self, edge_bytes: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(edge_bytes, dtype=np.float64) + self.b


def padded_preds(graph: OpGraph, comm: Comm | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predecessors as a padded matrix ``P`` (n, K) (``-1`` = none) and cross-lane delays (n, K)."""
    n = graph.num_nodes
    deg = graph.in_degree
    k = int(deg.max()) if n and graph.num_edges else 0
    P = np.full((n, max(k, 1)), -1, dtype=np.int64)
    D = np.zeros((n, max(k, 1)), dtype=np.float64)
    delays = comm.delay(graph.edge_bytes) if comm is not None else np.zeros(graph.num_edges)
    ptr = graph.pred_ptr
    for v in range(n):
        a, b = ptr[v], ptr[v + 1]
        P[v, : b - a] = graph.pred_idx[a:b]
        D[v, : b - a] = delays[graph.pred_eid[a:b]]
    return P, D


def times_batch(
    graph: OpGraph,
    orders: np.ndarray,
    *,
    lanes: int = 1,
    lane: np.ndarray | None = None,
    comm: Comm | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Start times and lanes of ``B`` candidates.

    Parameters
    ----------
    graph
        The graph.
    orders
        (B, n) int array, each row a topological order (not checked here: see
        :meth:`Schedule.validate`).
    lanes
        Number of lanes ``m`` (list semantics).
    lane
        (B, n) int array of given lanes, indexed by node: chain semantics. ``None``: list
        semantics.
    comm
        Optional communication model.

    Returns
    -------
    start, lane
        (B, n) float64 start times and (B, n) int64 lanes, indexed by node id.
    """
    o = as_orders(graph, orders)
    B, n = o.shape
    P, D = padded_preds(graph, comm)
    dur = graph.duration
    has_comm = comm is not None and not comm.is_zero
    rows = np.arange(B)
    start = np.zeros((B, n))
    finish = np.full((B, n + 1), -np.inf)  # column n: the "no predecessor" pad
    P = np.where(P < 0, n, P)
    if lane is not None:
        given = np.asarray(lane, dtype=np.int64)
        if given.ndim == 1:
            given = np.broadcast_to(given, (B, n))
        if given.shape != (B, n):
            raise InvalidScheduleError(f"lane must have shape ({B}, {n}), got {given.shape}")
        m = int(given.max()) + 1 if n else 1
        m = max(m, lanes)
        out_lane = np.array(given, dtype=np.int64, copy=True)
    else:
        m = lanes
        out_lane = np.zeros((B, n), dtype=np.int64)
    if m < 1:
        raise InvalidScheduleError(f"need at least one lane, got {m}")
    lane_ext = np.zeros((B, n + 1), dtype=np.int64)
    free = np.zeros((B, m))
    lane_ids = np.arange(m)
    for k in range(n):
        v = o[:, k]
        pp = P[v]  # (B, K)
        fin = finish[rows[:, None], pp]  # (B, K), -inf for pads
        if lane is not None:
            ln = out_lane[rows, v]
            arrive = fin
            if has_comm:
                cross = lane_ext[rows[:, None], pp] != ln[:, None]
                arrive = fin + D[v] * cross
            ready = np.maximum(arrive.max(axis=1), 0.0)
            s = np.maximum(ready, free[rows, ln])
        else:
            if has_comm:
                pl = lane_ext[rows[:, None], pp]  # (B, K)
                cross = pl[:, :, None] != lane_ids[None, None, :]  # (B, K, m)
                arrive = (fin[:, :, None] + D[v][:, :, None] * cross).max(axis=1)  # (B, m)
                cand = np.maximum(np.maximum(arrive, 0.0), free)
            else:
                ready = np.maximum(fin.max(axis=1), 0.0)
                cand = np.maximum(ready[:, None], free)
            s = cand.min(axis=1)
            best = np.isclose(cand, s[:, None], rtol=0.0, atol=1e-12)
            ln = np.where(best, free, -np.inf).argmax(axis=1)
            out_lane[rows, v] = ln
        start[rows, v] = s
        f = s + dur[v]
        finish[rows, v] = f
        lane_ext[rows, v] = ln
        free[rows, ln] = f
    return start, out_lane


def makespan_batch(
    graph: OpGraph,
    orders: np.ndarray,
    *,
    lanes: int = 1,
    lane: np.ndarray | None = None,
    comm: Comm | None = None,
) -> np.ndarray:
    """Makespans (B,) of ``B`` orders: list semantics, or chain semantics when ``lane`` is given.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 2), (1, 2)], duration=[2, 3, 1])
    >>> makespan_batch(g, np.array([[0, 1, 2], [1, 0, 2]]), lanes=2).tolist()
    [4.0, 4.0]
    >>> makespan_batch(g, np.array([[0, 1, 2]]), lanes=1).tolist()
    [6.0]
    """
    if graph.num_nodes == 0:
        return np.zeros(as_orders(graph, orders).shape[0])
    start, _ = times_batch(graph, orders, lanes=lanes, lane=lane, comm=comm)
    return (start + graph.duration[None, :]).max(axis=1)


def chain_times(
    graph: OpGraph, order: np.ndarray, lane: np.ndarray, comm: Comm | None = None
) -> np.ndarray:
    """Start times (n,) of one order with given lanes (semantics (a))."""
    start, _ = times_batch(graph, np.asarray(order)[None], lane=np.asarray(lane)[None], comm=comm)
    return start[0]


def list_times(
    graph: OpGraph, order: np.ndarray, lanes: int, comm: Comm | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Start times and lanes (n,) of one order decoded by list semantics (b)."""
    start, lane = times_batch(graph, np.asarray(order)[None], lanes=lanes, comm=comm)
    return start[0], lane[0]


def makespan_chain(
    graph: OpGraph, order: np.ndarray, lane: np.ndarray, comm: Comm | None = None
) -> float:
    """Makespan of one order with given lanes (semantics (a))."""
    return float(makespan_batch(graph, np.asarray(order)[None], lane=np.asarray(lane)[None],
                                comm=comm)[0])


def makespan_list(graph: OpGraph, order: np.ndarray, lanes: int, comm: Comm | None = None) -> float:
    """Makespan of one order decoded by list semantics (b) on ``lanes`` lanes."""
    return float(makespan_batch(graph, np.asarray(order)[None], lanes=lanes, comm=comm)[0])

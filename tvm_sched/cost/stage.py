"""The stage-partition cost of the ICML'24 differentiable-scheduling papers (and GauS).

Assign each node a stage ``s_v`` in ``0..D-1`` with ``s_u <= s_v`` on every edge (same stage
allowed). The cost is

    ratio * max_d (sum of node weights in stage d) + sum over data edges of (s_v - s_u)

where a *data edge* carries a non-zero number of bytes, and ``s_v - s_u`` is the number of stage
boundaries the edge crosses. Node weights are ``out_bytes`` by default (the GML readers put the
papers' node ``parameter`` there).

:func:`stages_from_order` turns a topological order into stages -- contiguous chunks of the order
are always a legal partition -- by the exact min-max linear partition (binary search on the
capacity, greedy fill); that is how order-based solvers take part in this objective.
"""

from __future__ import annotations

import numpy as np

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph

__all__ = ["node_weights", "stage_cost", "stage_cost_batch", "stages_from_order",
           "stage_lower_bound", "check_stages", "stages_from_orders"]


def node_weights(graph: OpGraph, weight: str = "out_bytes") -> np.ndarray:
    """The per-node weight array named ``weight`` (``out_bytes``, ``duration`` or ``flops``)."""
    if weight not in ("out_bytes", "duration", "flops"):
        raise ValueError(f"unknown stage weight {weight!r}; use out_bytes, duration or flops")
    return np.asarray(getattr(graph, weight), dtype=np.float64)


def check_stages(graph: OpGraph, stages: np.ndarray, num_stages: int) -> np.ndarray:
    """Validate one stage vector; return it as int64. Raises InvalidScheduleError."""
    s = np.asarray(stages)
    if s.shape != (graph.num_nodes,):
        raise InvalidScheduleError(f"need one stage per node ({graph.num_nodes}), got {s.shape}")
    if s.size and np.any(s != np.round(s)):
        v = int(np.flatnonzero(s != np.round(s))[0])
        raise InvalidScheduleError(f"node {v} has non-integer stage {s[v]!r}")
    s = s.astype(np.int64)
    bad = np.flatnonzero((s < 0) | (s >= num_stages))
    if bad.size:
        v = int(bad[0])
        raise InvalidScheduleError(f"node {v} is in stage {s[v]}; stages are 0..{num_stages - 1}")
    viol = np.flatnonzero(s[graph.src] > s[graph.dst])
    if viol.size:
        e = int(viol[0])
        u, v = int(graph.src[e]), int(graph.dst[e])
        raise InvalidScheduleError(
            f"edge {u} -> {v} ({graph.names[u]!r} -> {graph.names[v]!r}) is violated: "
            f"stage {s[v]} < stage {s[u]}"
        )
    return s


def stage_cost_batch(
    graph: OpGraph,
    stages: np.ndarray,
    *,
    num_stages: int,
    ratio: float = 100.0,
    weight: str = "out_bytes",
) -> np.ndarray:
    """Costs (B,) of ``B`` stage vectors (B, n) (assumed legal; see :func:`check_stages`).

    Examples
    --------
    >>> g = OpGraph(3, [(0, 1), (1, 2)], out_bytes=[5, 5, 5])
    >>> stage_cost_batch(g, np.array([[0, 0, 1], [0, 1, 1]]), num_stages=2, ratio=1).tolist()
    [11.0, 11.0]
    """
    s = np.asarray(stages, dtype=np.int64)
    if s.ndim == 1:
        s = s[None, :]
    B, n = s.shape
    if n != graph.num_nodes:
        raise InvalidScheduleError(f"stages must have shape (B, {graph.num_nodes}), got {s.shape}")
    w = node_weights(graph, weight)
    load = np.zeros((B, num_stages))
    np.add.at(load, (np.broadcast_to(np.arange(B)[:, None], (B, n)), s), np.broadcast_to(w, (B, n)))
    data = graph.edge_bytes > 0
    cross = (s[:, graph.dst[data]] - s[:, graph.src[data]]).sum(axis=1)
    return ratio * load.max(axis=1) + cross


def stage_cost(
    graph: OpGraph,
    stages: np.ndarray,
    *,
    num_stages: int,
    ratio: float = 100.0,
    weight: str = "out_bytes",
) -> float:
    """Cost of one legal stage vector (validated)."""
    s = check_stages(graph, stages, num_stages)
    return float(stage_cost_batch(graph, s[None], num_stages=num_stages, ratio=ratio,
                                  weight=weight)[0])


def stage_lower_bound(graph: OpGraph, *, num_stages: int, ratio: float = 100.0,
                      weight: str = "out_bytes") -> float:
    """``ratio * max(total weight / D, heaviest node)`` (crossings are >= 0)."""
    w = node_weights(graph, weight)
    if w.size == 0:
        return 0.0
    return float(ratio * max(w.sum() / num_stages, w.max()))


def _greedy_chunks(w: np.ndarray, cap: np.ndarray, num_stages: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Greedy fill of each row of ``w`` (B, n) under capacities ``cap`` (B,), in lockstep.

    Returns the number of chunks per row and, when ``num_stages`` is given, the chunk of each
    position (never past ``num_stages - 1``).
    """
    B, n = w.shape
    chunks = np.ones(B, dtype=np.int64)
    acc = np.zeros(B)
    which = np.zeros((B, n), dtype=np.int64) if num_stages is not None else None
    for k in range(n):
        x = w[:, k]
        cut = (acc + x > cap) & (k > 0)
        if num_stages is not None:
            cut &= chunks < num_stages
        chunks += cut
        acc = np.where(cut, x, acc + x)
        if which is not None:
            which[:, k] = chunks - 1
    return chunks, which


def stages_from_orders(
    graph: OpGraph, orders: np.ndarray, *, num_stages: int, weight: str = "out_bytes"
) -> np.ndarray:
    """Split each topological order (B, n) into at most ``num_stages`` contiguous chunks of least
    max weight (the exact min-max linear partition).

    The capacity is found by a binary search run for all orders in lockstep (exact for integer
    weights; to 1e-9 relative for real ones); chunks are filled greedily, so each stage is as full
    as the capacity allows.

    Returns
    -------
    np.ndarray
        (B, n) int64 stage per node, indexed by node id.
    """
    o = np.asarray(orders, dtype=np.int64)
    if o.ndim == 1:
        o = o[None]
    B, n = o.shape
    stages = np.zeros((B, graph.num_nodes), dtype=np.int64)
    if n == 0 or B == 0:
        return stages
    w = node_weights(graph, weight)[o]
    lo, hi = w.max(axis=1), w.sum(axis=1)
    if num_stages > 1:
        if bool(np.all(w == np.round(w))):
            lo, hi = lo.astype(np.int64), hi.astype(np.int64)
            while np.any(lo < hi):
                mid = (lo + hi) // 2
                ok = _greedy_chunks(w, mid.astype(np.float64))[0] <= num_stages
                hi = np.where(ok, mid, hi)
                lo = np.where(ok | (lo >= hi), lo, mid + 1)
            cap = hi.astype(np.float64)
        else:
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                ok = _greedy_chunks(w, mid)[0] <= num_stages
                hi = np.where(ok, mid, hi)
                lo = np.where(ok, lo, mid)
                if np.all(hi - lo <= 1e-9 * np.maximum(1.0, hi)):
                    break
            cap = hi
    else:
        cap = hi.astype(np.float64)
    _, which = _greedy_chunks(w, cap, num_stages)
    stages[np.arange(B)[:, None], o] = which
    return stages


def stages_from_order(
    graph: OpGraph, order: np.ndarray, *, num_stages: int, weight: str = "out_bytes"
) -> np.ndarray:
    """:func:`stages_from_orders` for one order: (n,) int64 stage per node."""
    return stages_from_orders(graph, np.asarray(order)[None], num_stages=num_stages,
                              weight=weight)[0]

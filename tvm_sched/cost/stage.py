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
           "stage_lower_bound", "check_stages"]


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


def _min_chunks(w: np.ndarray, cap: float) -> int:
    chunks, acc = 1, 0.0
    for x in w:
        if acc + x > cap:
            chunks += 1
            acc = x
        else:
            acc += x
    return chunks


def stages_from_order(
    graph: OpGraph, order: np.ndarray, *, num_stages: int, weight: str = "out_bytes"
) -> np.ndarray:
    """Split a topological order into at most ``num_stages`` contiguous chunks of least max weight.

    The capacity is found by binary search (exact for integer weights; to 1e-9 relative for
    real ones); chunks are filled greedily, so each stage is as full as the capacity allows.

    Returns
    -------
    np.ndarray
        (n,) int64 stage per node, indexed by node id.
    """
    order = np.asarray(order, dtype=np.int64)
    w_all = node_weights(graph, weight)
    w = w_all[order]
    n = order.size
    stages = np.zeros(graph.num_nodes, dtype=np.int64)
    if n == 0:
        return stages
    lo, hi = float(w.max()), float(w.sum())
    integral = bool(np.all(w == np.round(w)))
    if num_stages > 1 and hi > lo:
        if integral:
            lo_i, hi_i = int(lo), int(hi)
            while lo_i < hi_i:
                mid = (lo_i + hi_i) // 2
                if _min_chunks(w, mid) <= num_stages:
                    hi_i = mid
                else:
                    lo_i = mid + 1
            cap = float(lo_i)
        else:
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if _min_chunks(w, mid) <= num_stages:
                    hi = mid
                else:
                    lo = mid
                if hi - lo <= 1e-9 * max(1.0, hi):
                    break
            cap = hi
    else:
        cap = hi
    d, acc = 0, 0.0
    for k in range(n):
        x = w[k]
        if acc + x > cap and d < num_stages - 1 and k > 0:
            d += 1
            acc = x
        else:
            acc += x
        stages[order[k]] = d
    return stages

"""Graph algorithms of :class:`~tvm_sched.graph.OpGraph`, on its numpy arrays.

Small pure functions over compressed adjacency (CSR: the neighbours of ``v`` are
``idx[ptr[v]:ptr[v+1]]``), so that the class keeps only data and validation. Nothing here knows
the class; every function takes arrays and returns new (writable) arrays. :func:`kahn_lists`
and :func:`find_cycle` take plain predecessor lists instead, for the relations built at run time
(lane orders + waits + data edges): :func:`find_cycle` is the only cycle finder of tvm_sched.
The orders built on an :class:`~tvm_sched.graph.OpGraph` (depth- and breadth-first, priority,
least peak memory first) are :mod:`tvm_sched.graph.orders`.

Examples
--------
>>> import numpy as np
>>> src, dst = np.array([0, 1]), np.array([2, 2])
>>> ptr, idx, _ = csr(dst, src, 3)          # predecessors
>>> sptr, sidx, _ = csr(src, dst, 3)        # successors
>>> kahn(3, ptr, sptr, sidx).tolist()
[0, 1, 2]
>>> bottom_level(np.array([1.0, 2.0, 3.0]), kahn(3, ptr, sptr, sidx), sptr, sidx).tolist()
[4.0, 5.0, 3.0]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["csr", "kahn", "kahn_lists", "find_cycle", "top_level", "bottom_level", "depth"]


def csr(key: np.ndarray, other: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ptr, idx, eid)``: for each node ``k``, the ``other`` ends of the edges whose ``key``
    end is ``k``, sorted by node id; ``eid`` are the edge ids aligned with ``idx``."""
    order = np.lexsort((other, key))
    counts = np.bincount(key, minlength=n) if key.size else np.zeros(n, np.int64)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, other[order].copy(), order.astype(np.int64)


def kahn(n: int, pred_ptr: np.ndarray, succ_ptr: np.ndarray, succ_idx: np.ndarray
         ) -> np.ndarray:
    """Topological order, smallest ready index first; shorter than ``n`` on a cycle."""
    indeg = np.diff(pred_ptr).astype(np.int64)
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        u = heapq.heappop(ready)
        order.append(u)
        for v in succ_idx[succ_ptr[u] : succ_ptr[u + 1]]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, int(v))
    return np.array(order, dtype=np.int64)


def kahn_lists(preds: Sequence[Iterable[int]]) -> tuple[list[int], list[int]]:
    """A topological order of the relation ``preds[v]`` (the nodes before ``v``, repeats
    allowed), and the nodes left out by a cycle (empty when there is none).

    For the relations built at run time (lane orders + waits + data edges) that are not an
    :class:`~tvm_sched.graph.OpGraph`.

    Examples
    --------
    >>> kahn_lists([[], [0], [1]])
    ([0, 1, 2], [])
    >>> kahn_lists([[], [2], [1]])[1]
    [1, 2]
    """
    n = len(preds)
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for v, ps in enumerate(preds):
        for u in ps:
            succ[u].append(v)
            indeg[v] += 1
    ready = [v for v in range(n) if indeg[v] == 0]
    order: list[int] = []
    while ready:
        v = ready.pop()
        order.append(v)
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    return order, [v for v in range(n) if indeg[v] > 0]


def find_cycle(preds: Sequence[Iterable[int]], left: Iterable[int] | None = None) -> list[int]:
    """Nodes on one cycle of the relation ``preds`` (``preds[v]``: the nodes before ``v``).

    The one cycle finder of tvm_sched: :class:`~tvm_sched.graph.OpGraph` validation and the lane
    engines' checks name the cycle it returns. It walks backwards from the lowest node that
    Kahn's algorithm left out, always to the first predecessor (in ``preds[v]``'s order) that
    was left out too, until a node repeats: every left-out node has such a predecessor.

    Parameters
    ----------
    preds
        For each node ``0..n-1``, the nodes that must come before it (lists, tuples or integer
        arrays; repeats allowed).
    left
        The nodes Kahn's algorithm could not order (the second result of :func:`kahn_lists`);
        computed when not given.

    Returns
    -------
    list of int
        The cycle's nodes in edge direction (each before the next, the last before the first);
        empty when the relation has no cycle.

    Raises
    ------
    ValueError
        A node of ``left`` has no predecessor in ``left`` (``left`` is not what Kahn's
        algorithm leaves out).

    Examples
    --------
    >>> find_cycle([[], [0, 3], [1], [2]])   # 0 -> 1 -> 2 -> 3 -> 1
    [2, 3, 1]
    >>> find_cycle([[], [0], [1]])
    []
    """
    if left is None:
        left = kahn_lists(preds)[1]
    stuck = {int(v) for v in left}
    if not stuck:
        return []
    u = min(stuck)
    seen: dict[int, int] = {}
    path: list[int] = []
    while u not in seen:
        seen[u] = len(path)
        path.append(u)
        nxt = next((int(p) for p in preds[u] if int(p) in stuck), None)
        if nxt is None:
            raise ValueError(f"node {u} has no predecessor among the nodes left out; they are "
                             "not what Kahn's algorithm leaves out")
        u = nxt
    cycle = path[seen[u] :]
    cycle.reverse()
    return cycle


def top_level(duration: np.ndarray, topo: np.ndarray, pred_ptr: np.ndarray,
              pred_idx: np.ndarray) -> np.ndarray:
    """Earliest start of each node with unlimited lanes (ASAP)."""
    t = np.zeros(duration.size)
    for v in topo:
        p = pred_idx[pred_ptr[v] : pred_ptr[v + 1]]
        if p.size:
            t[v] = float(np.max(t[p] + duration[p]))
    return t


def bottom_level(duration: np.ndarray, topo: np.ndarray, succ_ptr: np.ndarray,
                 succ_idx: np.ndarray) -> np.ndarray:
    """Longest path from each node to a sink, its own duration included."""
    b = duration.astype(np.float64).copy()
    for v in topo[::-1]:
        s = succ_idx[succ_ptr[v] : succ_ptr[v + 1]]
        if s.size:
            b[v] += float(np.max(b[s]))
    return b


def depth(topo: np.ndarray, pred_ptr: np.ndarray, pred_idx: np.ndarray) -> np.ndarray:
    """Nodes on the longest path ending at each node, minus one (sources: 0)."""
    lvl = np.zeros(topo.size, dtype=np.int64)
    for v in topo:
        p = pred_idx[pred_ptr[v] : pred_ptr[v + 1]]
        if p.size:
            lvl[v] = int(np.max(lvl[p])) + 1
    return lvl

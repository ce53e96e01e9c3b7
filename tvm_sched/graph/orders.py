"""Order algorithms on an :class:`~tvm_sched.graph.OpGraph`: each returns a topological order.

The orders every layer above asks for -- the solvers' baselines, the seeds and warm starts of
GauS, CP-SAT and the GFlowNet, the tuner's random fill, the runtime's default plan -- live here
once, so no layer reaches into another's internals for them:

- :func:`program_order`: the module's own order (node ids), the baseline every order is
  compared with;
- :func:`dfs_order`: depth-first -- a ready stack, so a node's newly ready successors run next
  (lowest id first); keeps producer-consumer pairs close;
- :func:`bfs_order`: breadth-first -- Kahn's algorithm with a FIFO queue in program order;
- :func:`priority_order`: list-scheduling style -- always the ready node of highest priority
  (ties: lowest id); with the critical-path priorities (``graph.bottom_level``) it is the order
  list scheduling starts from;
- :func:`priority_orders_batch`: the same for a ``(B, n)`` matrix of priorities, vectorised over
  the rows (numpy), for sampling solvers that draw thousands of orders;
- :func:`lpmf_order`: least peak memory first, the greedy of PyTorch Inductor's
  ``reorder_for_peak_memory``: among ready nodes run the one whose step raises the live bytes
  least (its output minus the inputs it frees), ties by smaller output, then program order;
- :func:`random_order`: a uniformly random ready node at every step (a random Kahn choice).

The array-level building blocks (Kahn's algorithm on CSR arrays or predecessor lists, the one
cycle finder :func:`~tvm_sched.graph.algorithms.find_cycle`) are in
:mod:`tvm_sched.graph.algorithms`. TVM's own ``relax.transform.TopologicalSort`` orders are not
reimplemented here: they come from running that pass (:mod:`tvm_sched.tune.candidates`). Pure
Python + numpy; every function is deterministic given its inputs.

Examples
--------
>>> g = OpGraph(5, [(0, 1), (1, 2), (0, 3), (3, 4)])
>>> dfs_order(g).tolist(), bfs_order(g).tolist()
([0, 1, 2, 3, 4], [0, 1, 3, 2, 4])
"""

from __future__ import annotations

import heapq
import random
from collections import deque

import numpy as np

from tvm_sched.graph.opgraph import OpGraph

__all__ = [
    "program_order",
    "dfs_order",
    "bfs_order",
    "priority_order",
    "priority_orders_batch",
    "lpmf_order",
    "random_order",
]


def program_order(graph: OpGraph) -> np.ndarray:
    """The module's own order: nodes by id, as the program lists them.

    A graph numbered out of topological order (a hand-made DAG) gets its lowest-id-first
    topological order instead (``graph.topological_order``).

    Parameters
    ----------
    graph
        The graph.

    Returns
    -------
    numpy.ndarray
        (n,) int64, a topological order.

    Examples
    --------
    >>> program_order(OpGraph(3, [(0, 2), (1, 2)])).tolist()
    [0, 1, 2]
    >>> program_order(OpGraph(3, [(2, 0), (1, 0)])).tolist()
    [1, 2, 0]
    """
    if graph.program_order_is_topological:
        return np.arange(graph.num_nodes, dtype=np.int64)
    return np.asarray(graph.topological_order, dtype=np.int64)


def dfs_order(graph: OpGraph) -> np.ndarray:
    """Depth-first topological order: newly ready successors run next, lowest index first.

    Sources start in program order; a node's successors that become ready when it runs are
    pushed on a stack, so the lowest-numbered of them runs next.

    Parameters
    ----------
    graph
        The graph.

    Returns
    -------
    numpy.ndarray
        (n,) int64, a topological order.

    Examples
    --------
    >>> g = OpGraph(5, [(0, 1), (1, 2), (0, 3), (3, 4)])
    >>> dfs_order(g).tolist()
    [0, 1, 2, 3, 4]
    """
    indeg = graph.in_degree.astype(np.int64).copy()
    stack = [v for v in range(graph.num_nodes - 1, -1, -1) if indeg[v] == 0]
    out: list[int] = []
    succ = graph.succ_lists
    while stack:
        u = stack.pop()
        out.append(u)
        for v in reversed(succ[u]):
            indeg[v] -= 1
            if indeg[v] == 0:
                stack.append(v)
    return np.array(out, dtype=np.int64)


def bfs_order(graph: OpGraph) -> np.ndarray:
    """Breadth-first topological order (Kahn with a FIFO queue, sources in program order).

    Parameters
    ----------
    graph
        The graph.

    Returns
    -------
    numpy.ndarray
        (n,) int64, a topological order.

    Examples
    --------
    >>> g = OpGraph(5, [(0, 1), (1, 2), (0, 3), (3, 4)])
    >>> bfs_order(g).tolist()
    [0, 1, 3, 2, 4]
    """
    indeg = graph.in_degree.astype(np.int64).copy()
    queue = deque(v for v in range(graph.num_nodes) if indeg[v] == 0)
    out: list[int] = []
    succ = graph.succ_lists
    while queue:
        u = queue.popleft()
        out.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                queue.append(v)
    return np.array(out, dtype=np.int64)


def priority_order(graph: OpGraph, priority: np.ndarray) -> np.ndarray:
    """Topological order that always takes the ready node of highest priority (ties: lowest id).

    Parameters
    ----------
    graph
        The graph.
    priority
        (n,) numbers, higher runs first; e.g. ``graph.bottom_level`` (critical path first).

    Returns
    -------
    numpy.ndarray
        (n,) int64, a topological order.

    Examples
    --------
    >>> g = OpGraph(4, [(0, 3), (1, 3), (2, 3)])
    >>> priority_order(g, np.array([1.0, 3.0, 2.0, 9.0])).tolist()
    [1, 2, 0, 3]
    >>> priority_order(g, np.zeros(4)).tolist()  # ties: lowest id
    [0, 1, 2, 3]
    """
    indeg = graph.in_degree.astype(np.int64).copy()
    pr = np.asarray(priority, dtype=np.float64)
    heap = [(-pr[v], v) for v in range(graph.num_nodes) if indeg[v] == 0]
    heapq.heapify(heap)
    out: list[int] = []
    succ = graph.succ_lists
    while heap:
        _, u = heapq.heappop(heap)
        out.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(heap, (-pr[v], v))
    return np.array(out, dtype=np.int64)


def priority_orders_batch(graph: OpGraph, priorities: np.ndarray) -> np.ndarray:
    """Topological orders from a batch of priorities: Kahn vectorised over the rows.

    Each step runs, in every row, the ready node with the highest priority (ties: lowest id),
    so row ``b`` equals ``priority_order(graph, priorities[b])``.

    Parameters
    ----------
    graph
        The graph.
    priorities
        (B, n) numbers, one priority vector per row.

    Returns
    -------
    numpy.ndarray
        (B, n) int64, each row a topological order.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 2)])
    >>> priority_orders_batch(g, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 2.0]])).tolist()
    [[1, 0, 2], [0, 2, 1]]
    """
    pr = np.asarray(priorities, dtype=np.float64)
    B, n = pr.shape
    indeg = np.broadcast_to(graph.in_degree.astype(np.int64), (B, n)).copy()
    deg = graph.out_degree
    k = int(deg.max()) if graph.num_edges else 1
    S = np.full((n, k), n, dtype=np.int64)  # padded successors; column n is a sink pad
    for v in range(n):
        a, b = graph.succ_ptr[v], graph.succ_ptr[v + 1]
        S[v, : b - a] = graph.succ_idx[a:b]
    indeg = np.concatenate([indeg, np.zeros((B, 1), np.int64)], axis=1)
    done = np.zeros((B, n), dtype=bool)
    rows = np.arange(B)
    orders = np.empty((B, n), dtype=np.int64)
    for step in range(n):
        masked = np.where((indeg[:, :n] == 0) & ~done, pr, -np.inf)
        v = masked.argmax(axis=1)
        orders[:, step] = v
        done[rows, v] = True
        np.subtract.at(indeg, (rows[:, None], S[v]), 1)
    return orders


def lpmf_order(graph: OpGraph) -> np.ndarray:
    """Least-peak-memory-first order (see the module docstring).

    A node's step "frees" the output of every input it is the last consumer of (function
    outputs are never freed); among ready nodes the one with the least ``out_bytes - freed``
    runs first, ties by smaller ``out_bytes``, then lowest id.

    Parameters
    ----------
    graph
        The graph (``out_bytes`` and ``is_output`` are read).

    Returns
    -------
    numpy.ndarray
        (n,) int64, a topological order.

    Examples
    --------
    >>> # 0 feeds a big branch (1) and a small one (2 -> 3); 3 frees 2 at once.
    >>> g = OpGraph(5, [(0, 1), (0, 2), (2, 3), (1, 4), (3, 4)], out_bytes=[1, 100, 10, 1, 1])
    >>> lpmf_order(g).tolist()
    [0, 2, 3, 1, 4]
    """
    n = graph.num_nodes
    out = graph.out_bytes.astype(np.int64)
    is_out = graph.is_output
    remaining = graph.out_degree.astype(np.int64).copy()
    indeg = graph.in_degree.astype(np.int64).copy()
    scheduled = np.zeros(n, dtype=bool)
    frees = np.zeros(n, dtype=np.int64)  # bytes v frees when it runs now
    preds, succ = graph.pred_lists, graph.succ_lists
    for u in range(n):
        if remaining[u] == 1 and not is_out[u]:
            frees[succ[u][0]] += out[u]
    version = np.zeros(n, dtype=np.int64)

    def key(v: int) -> tuple[int, int, int, int, int]:
        return (int(out[v] - frees[v]), int(out[v]), v, int(version[v]), v)

    heap = [key(v) for v in range(n) if indeg[v] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        *_, ver, v = heapq.heappop(heap)
        if scheduled[v] or ver != version[v]:
            continue
        scheduled[v] = True
        order.append(v)
        for u in preds[v]:
            remaining[u] -= 1
            if remaining[u] == 1 and not is_out[u]:
                c = next(c for c in succ[u] if not scheduled[c])
                frees[c] += out[u]
                if indeg[c] == 0:
                    version[c] += 1
                    heapq.heappush(heap, key(c))
        for c in succ[v]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(heap, key(c))
    return np.array(order, dtype=np.int64)


def random_order(graph: OpGraph, rnd: random.Random) -> np.ndarray:
    """A random topological order: Kahn's algorithm picking a uniformly random ready node.

    Every topological order has a non-zero probability (not an equal one). The draws come from
    ``rnd`` only (one ``randrange`` per node), so a seeded ``random.Random`` -- or the one a
    hypothesis strategy hands out -- reproduces the order.

    Parameters
    ----------
    graph
        The graph.
    rnd
        The source of randomness.

    Returns
    -------
    numpy.ndarray
        (n,) int64, a topological order.

    Examples
    --------
    >>> g = OpGraph(4, [(0, 3), (1, 3), (2, 3)])
    >>> o = random_order(g, random.Random(0)).tolist()
    >>> sorted(o[:3]), o[3]
    ([0, 1, 2], 3)
    >>> o == random_order(g, random.Random(0)).tolist()
    True
    """
    indeg = graph.in_degree.astype(int).tolist()
    ready = [v for v in range(graph.num_nodes) if indeg[v] == 0]
    order: list[int] = []
    while ready:
        v = ready.pop(rnd.randrange(len(ready)))
        order.append(v)
        for s in graph.succ_lists[v]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    return np.array(order, dtype=np.int64)

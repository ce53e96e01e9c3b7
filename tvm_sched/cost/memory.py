"""Liveness peak memory of an order on one lane.

Node v's tensor (``out_bytes[v]`` bytes) is allocated when v runs and stays live through the step
of its last consumer (inputs are live while their consumer runs); a function output is never
freed; a tensor nobody reads is live only during its own step. The peak is the largest sum of
live bytes over the steps. Model inputs and weights are not nodes and are not counted.

This is the liveness proxy. TVM's static planner allocates differently (greedy, order-dependent
reuse); its replica belongs to the TVM-integration layer.
"""

from __future__ import annotations

import numpy as np

from tvm_sched.graph import OpGraph
from tvm_sched.schedule import as_orders

__all__ = ["memory_profile_batch", "peak_memory_batch", "peak_memory", "memory_profile",
           "memory_lower_bound"]


def memory_profile_batch(graph: OpGraph, orders: np.ndarray) -> np.ndarray:
    """Live bytes at every step of ``B`` orders.

    Parameters
    ----------
    graph
        The graph.
    orders
        (B, n) int array, each row a permutation of the nodes (topological; not checked).

    Returns
    -------
    np.ndarray
        (B, n) int64: live bytes while the k-th node of each order runs.
    """
    o = as_orders(graph, orders)
    n = graph.num_nodes
    B = o.shape[0]
    rows = np.arange(B)[:, None]
    pos = np.empty_like(o)
    pos[rows, o] = np.arange(n)[None, :]
    last = pos.copy()
    if graph.num_edges:
        np.maximum.at(last, (np.broadcast_to(rows, (B, graph.num_edges)),
                             np.broadcast_to(graph.src, (B, graph.num_edges))), pos[:, graph.dst])
    last[:, graph.is_output] = n - 1
    size = np.broadcast_to(graph.out_bytes, (B, n))
    delta = np.zeros((B, n + 1), dtype=np.int64)
    delta[rows, pos] = size
    np.subtract.at(delta, (np.broadcast_to(rows, (B, n)), last + 1), size)
    return np.cumsum(delta, axis=1)[:, :n]


def peak_memory_batch(graph: OpGraph, orders: np.ndarray) -> np.ndarray:
    """Liveness peaks (B,) int64 of ``B`` orders.

    Examples
    --------
    >>> g = OpGraph(4, [(0, 1), (0, 2), (1, 3), (2, 3)], out_bytes=[4, 2, 8, 1])
    >>> peak_memory_batch(g, np.array([[0, 1, 2, 3], [0, 2, 1, 3]])).tolist()
    [14, 14]
    """
    if graph.num_nodes == 0:
        return np.zeros(memory_profile_batch(graph, orders).shape[0], dtype=np.int64)
    return memory_profile_batch(graph, orders).max(axis=1)


def memory_profile(graph: OpGraph, order: np.ndarray) -> np.ndarray:
    """Live bytes (n,) at each step of one order."""
    return memory_profile_batch(graph, np.asarray(order)[None])[0]


def peak_memory(graph: OpGraph, order: np.ndarray) -> int:
    """Liveness peak of one order."""
    return int(peak_memory_batch(graph, np.asarray(order)[None])[0])


def memory_lower_bound(graph: OpGraph) -> int:
    """A lower bound on the peak of every order.

    While v runs its inputs and output are live, and at the last step all outputs are live.
    """
    if graph.num_nodes == 0:
        return 0
    ob = graph.out_bytes
    step = ob.copy()
    np.add.at(step, graph.dst, ob[graph.src])
    outputs = int(ob[graph.is_output].sum())
    return int(max(int(step.max()), outputs))

"""Brute-force optima on tiny graphs (reference values for solver tests).

Enumeration only: the values come from the exact evaluators in :mod:`tvm_sched.cost`, which have
their own tests against independent simulations. Keep graphs at <= 8 nodes (orders) and <= 6
nodes (lanes or stages).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from tvm_sched.cost import Comm, makespan_batch, peak_memory_batch, stage_cost_batch
from tvm_sched.graph import OpGraph

__all__ = ["topological_orders", "brute_makespan", "brute_peak_memory", "brute_stage"]


def topological_orders(graph: OpGraph) -> Iterator[tuple[int, ...]]:
    """Every topological order of ``graph`` (exponentially many: tiny graphs only).

    networkx's ``all_topological_sorts`` is the oracle (Knuth and Szwarcfiter's algorithm).

    Examples
    --------
    >>> sorted(topological_orders(OpGraph(3, [(0, 2), (1, 2)])))
    [(0, 1, 2), (1, 0, 2)]
    """
    import networkx as nx

    if graph.num_nodes == 0:
        yield ()
        return
    for order in nx.all_topological_sorts(graph.to_networkx()):
        yield tuple(int(v) for v in order)


def _all_orders(graph: OpGraph) -> np.ndarray:
    orders = list(topological_orders(graph))
    return np.array(orders, dtype=np.int64).reshape(len(orders), graph.num_nodes)


def brute_makespan(graph: OpGraph, lanes: int, comm: Comm | None = None) -> float:
    """Optimal makespan on ``lanes`` lanes.

    Without communication, list decoding over all orders reaches the optimum. With it, every
    order is combined with every lane assignment (chain semantics).
    """
    orders = _all_orders(graph)
    if comm is None or comm.is_zero:
        return float(makespan_batch(graph, orders, lanes=lanes).min())
    best = float("inf")
    n = graph.num_nodes
    assigns = np.array(list(itertools.product(range(lanes), repeat=n)), dtype=np.int64)
    for o in orders:
        vals = makespan_batch(graph, np.broadcast_to(o, (len(assigns), n)), lane=assigns,
                              lanes=lanes, comm=comm)
        best = min(best, float(vals.min()))
    return best


def brute_peak_memory(graph: OpGraph) -> int:
    """Least liveness peak over all topological orders."""
    return int(peak_memory_batch(graph, _all_orders(graph)).min())


def brute_stage(graph: OpGraph, *, num_stages: int, ratio: float = 100.0,
                weight: str = "out_bytes") -> float:
    """Least stage-partition cost over all legal stage assignments."""
    n = graph.num_nodes
    combos = list(itertools.product(range(num_stages), repeat=n))
    s = np.array(combos, dtype=np.int64).reshape(len(combos), n)
    legal = np.all(s[:, graph.src] <= s[:, graph.dst], axis=1) if graph.num_edges else np.ones(
        len(s), dtype=bool)
    return float(stage_cost_batch(graph, s[legal], num_stages=num_stages, ratio=ratio,
                                  weight=weight).min())

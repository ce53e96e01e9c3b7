"""Hypothesis strategies for operator graphs and their topological orders.

This module imports hypothesis at the top; the library itself never imports it (only tests do).

Durations are exact binary fractions (multiples of 1/8) unless ``exact=False``: sums of them are
exact in floating point, so two different paths to the same finish time give the same float, and
a test reference can compare start times and break ties with ``==`` just like the evaluator.
``exact=False`` draws arbitrary finite reals instead (for properties that hold up to rounding).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tvm_sched.graph import OpGraph, random_order

__all__ = ["dags", "dag_and_order", "dag_and_orders", "topological_order", "random_order",
           "lane_plans"]

_OPS = ("conv2d", "matmul", "add", "relu", "")


@st.composite
def dags(
    draw: st.DrawFn,
    min_nodes: int = 0,
    max_nodes: int = 10,
    *,
    int_durations: bool = False,
    max_duration: int = 8,
    exact: bool = True,
    zero_durations: bool = True,
    max_out_bytes: int = 1024,
    relabel: bool = True,
    random_edge_bytes: bool = True,
    with_meta: bool = False,
) -> OpGraph:
    """Valid :class:`OpGraph` s of ``min_nodes..max_nodes`` nodes.

    Parameters
    ----------
    min_nodes, max_nodes
        Size range.
    int_durations
        Integer durations in ``0..max_duration`` (``1..`` when ``zero_durations`` is false).
    max_duration
        Upper bound of the durations.
    exact
        Real durations are multiples of 1/8 (exact sums); false: any finite real.
    zero_durations
        Whether a duration may be 0.
    max_out_bytes
        Upper bound of ``out_bytes`` and of random edge sizes.
    relabel
        Allow a random relabelling of the nodes, so that program order ``0..n-1`` is not always
        topological (edges are first drawn with ``u < v``).
    random_edge_bytes
        Allow explicit edge sizes (zeros included) instead of the producer's ``out_bytes``.
    with_meta
        Attach a small JSON-native ``meta`` dict.
    """
    n = draw(st.integers(min_nodes, max_nodes))
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n)]
    edges = sorted(draw(st.sets(st.sampled_from(pairs), max_size=len(pairs)))) if pairs else []

    low = 0 if zero_durations else 1
    if int_durations:
        dur = st.integers(low, max_duration).map(float)
    elif exact:
        dur = st.integers(low, 8 * max_duration).map(lambda k: k / 8)
    else:
        dur = st.floats(0.0 if zero_durations else 1e-3, float(max_duration),
                        allow_nan=False, allow_infinity=False)
    duration = draw(st.lists(dur, min_size=n, max_size=n))
    out_bytes = draw(st.lists(st.integers(0, max_out_bytes), min_size=n, max_size=n))
    is_output = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    flops = draw(st.lists(st.integers(0, 10**6).map(float), min_size=n, max_size=n))
    ops = draw(st.lists(st.sampled_from(_OPS), min_size=n, max_size=n))
    edge_bytes = None
    if random_edge_bytes and edges and draw(st.booleans()):
        edge_bytes = draw(st.lists(st.integers(0, max_out_bytes), min_size=len(edges),
                                   max_size=len(edges)))

    perm = list(range(n))
    if relabel and n > 1 and draw(st.booleans()):
        perm = draw(st.permutations(range(n)))
    inv = [0] * n
    for old, new in enumerate(perm):
        inv[new] = old
    meta = None
    if with_meta:
        meta = draw(st.dictionaries(
            st.sampled_from(["name", "model", "block", "source"]),
            st.one_of(st.text(max_size=8), st.integers(-5, 5), st.booleans(),
                      st.lists(st.integers(0, 3), max_size=3)),
            max_size=3,
        ))
    return OpGraph(
        n,
        [(perm[u], perm[v]) for u, v in edges],
        duration=[duration[inv[i]] for i in range(n)],
        out_bytes=[out_bytes[inv[i]] for i in range(n)],
        flops=[flops[inv[i]] for i in range(n)],
        is_output=[is_output[inv[i]] for i in range(n)],
        edge_bytes=edge_bytes,
        names=[f"v{i}" for i in range(n)],
        ops=[ops[inv[i]] for i in range(n)],
        meta=meta,
    )


def topological_order(graph: OpGraph) -> st.SearchStrategy[np.ndarray]:
    """Random topological orders of ``graph`` (drawn by a random Kahn choice:
    :func:`tvm_sched.graph.orders.random_order`, re-exported here for the tests)."""
    return st.randoms(use_true_random=False).map(lambda rnd: random_order(graph, rnd))


@st.composite
def dag_and_order(draw: st.DrawFn, **dag_kw) -> tuple[OpGraph, np.ndarray]:
    """A graph from :func:`dags` (keywords passed on) and one random topological order of it."""
    g = draw(dags(**dag_kw))
    return g, draw(topological_order(g))


@st.composite
def dag_and_orders(
    draw: st.DrawFn, min_orders: int = 1, max_orders: int = 12, **dag_kw
) -> tuple[OpGraph, np.ndarray]:
    """A graph and a ``(B, n)`` array of random topological orders of it."""
    g = draw(dags(**dag_kw))
    b = draw(st.integers(min_orders, max_orders))
    rnd = draw(st.randoms(use_true_random=False))
    orders = [random_order(g, rnd) for _ in range(b)]
    return g, np.array(orders, dtype=np.int64).reshape(b, g.num_nodes)


@st.composite
def lane_plans(draw: st.DrawFn, max_nodes: int = 9, max_lanes: int = 3):
    """A valid :class:`~tvm_sched.runtime.plan.LanePlan` of a random DAG on up to ``max_lanes``
    random lanes, through the planner path (:func:`tvm_sched.testing.plans.planned_plan`)."""
    from tvm_sched.testing.plans import planned_plan

    graph = draw(dags(1, max_nodes, max_out_bytes=300))
    order = draw(topological_order(graph))
    lanes = draw(st.integers(1, max_lanes))
    lane = draw(st.lists(st.integers(0, lanes - 1), min_size=graph.num_nodes,
                         max_size=graph.num_nodes))
    return planned_plan(graph, order, lane)


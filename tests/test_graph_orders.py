"""The order algorithms and the one cycle finder of ``tvm_sched.graph`` (issue 19 item 3)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tvm_sched.graph as tg
from tvm_sched.graph import (
    OpGraph,
    bfs_order,
    dfs_order,
    find_cycle,
    lpmf_order,
    priority_order,
    priority_orders_batch,
    program_order,
    random_order,
)
from tvm_sched.graph.algorithms import kahn_lists
from tvm_sched.testing.strategies import dags


def is_topological(graph: OpGraph, order) -> bool:
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(graph.num_nodes)):
        return False
    pos = np.empty(graph.num_nodes, dtype=np.int64)
    pos[order] = np.arange(graph.num_nodes)
    return bool(np.all(pos[graph.src] < pos[graph.dst]))


def test_the_graph_package_exports_the_orders():
    for name in ("program_order", "dfs_order", "bfs_order", "priority_order",
                 "priority_orders_batch", "lpmf_order", "random_order", "find_cycle"):
        assert name in tg.__all__ and callable(getattr(tg, name)), name


@settings(max_examples=60, deadline=None)
@given(dags(max_nodes=12), st.integers(0, 2**31))
def test_every_order_is_topological(g, seed):
    rng = np.random.default_rng(seed)
    orders = [program_order(g), dfs_order(g), bfs_order(g), lpmf_order(g),
              priority_order(g, rng.random(g.num_nodes)), random_order(g, random.Random(seed)),
              *priority_orders_batch(g, rng.random((3, g.num_nodes)))]
    for o in orders:
        assert o.dtype == np.int64
        assert is_topological(g, o), o


def test_program_order_is_the_ids_when_they_are_topological():
    g = OpGraph(4, [(0, 3), (2, 3), (1, 2)])
    assert program_order(g).tolist() == [0, 1, 2, 3]
    h = OpGraph(3, [(2, 1), (1, 0)])  # numbered backwards: the lowest-id-first Kahn order
    assert program_order(h).tolist() == [2, 1, 0]


def test_priority_order_prefers_the_critical_path_and_breaks_ties_by_id():
    # 0 -> 1 -> 2 is long, 3 is short: critical-path priorities run the chain's head first
    g = OpGraph(4, [(0, 1), (1, 2)], duration=[1, 1, 1, 1])
    assert priority_order(g, g.bottom_level).tolist() == [0, 1, 2, 3]
    assert priority_order(g, -g.bottom_level).tolist() == [3, 0, 1, 2]
    assert priority_order(g, np.zeros(4)).tolist() == [0, 1, 2, 3]


@settings(max_examples=40, deadline=None)
@given(dags(max_nodes=10), st.integers(0, 2**31))
def test_random_order_depends_on_the_random_source_only(g, seed):
    a = random_order(g, random.Random(seed))
    assert a.tolist() == random_order(g, random.Random(seed)).tolist()


def test_random_order_reaches_every_order_of_a_small_graph():
    g = OpGraph(4, [(0, 3), (1, 3)])  # 0, 1, 2 free, 3 after 0 and 1: 8 orders
    rnd = random.Random(0)
    seen = {tuple(random_order(g, rnd).tolist()) for _ in range(400)}
    assert len(seen) == 8 and all(is_topological(g, o) for o in seen)


# ------------------------------------------------------------------------------ find_cycle
def assert_cycle(preds, cycle):
    assert cycle and len(set(cycle)) == len(cycle)
    for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        assert a in preds[b], f"{a} -> {b} is not an edge; cycle {cycle}"


def test_find_cycle_on_an_acyclic_relation_is_empty():
    assert find_cycle([]) == []
    assert find_cycle([[], [0], [0, 1], [2, 2]]) == []  # repeats allowed


def test_find_cycle_walks_back_from_the_lowest_stuck_node():
    preds = [[], [0, 3], [1], [2], [3]]  # 1 -> 2 -> 3 -> 1, and 4 hangs off the cycle
    assert kahn_lists(preds)[1] == [1, 2, 3, 4]
    assert find_cycle(preds) == [2, 3, 1]
    assert find_cycle(preds, [1, 2, 3, 4]) == [2, 3, 1]
    assert find_cycle([[1], [0]]) == [1, 0]


def test_find_cycle_takes_numpy_predecessors():
    preds = [np.array([1], dtype=np.int64), np.array([2]), np.array([0])]
    assert find_cycle(preds, np.array([0, 1, 2])) == [2, 1, 0]  # 2 -> 1 -> 0 -> 2


def test_find_cycle_rejects_nodes_that_are_not_what_kahn_leaves_out():
    with pytest.raises(ValueError, match="node 0 has no predecessor among the nodes left out"):
        find_cycle([[], [0]], [0, 1])


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: st.lists(
    st.lists(st.integers(0, n - 1), max_size=3), min_size=n, max_size=n)))
def test_find_cycle_finds_a_real_cycle_exactly_when_kahn_gets_stuck(preds):
    order, left = kahn_lists(preds)
    cycle = find_cycle(preds)
    assert (cycle == []) == (left == [])
    if cycle:
        assert_cycle(preds, cycle)
        assert set(cycle) <= set(left)
        assert find_cycle(preds, left) == cycle


def test_opgraph_and_the_python_engine_name_the_same_cycle():
    # both callers of find_cycle: the graph's validation and the lane engine's check
    from tvm_sched.errors import CycleError
    from tvm_sched.runtime.engine_python import check_lanes

    edges = [(0, 1), (1, 2), (2, 0)]
    with pytest.raises(CycleError) as g_err:
        OpGraph(3, edges)
    # lanes: 0 | 1 | 2; waits: each step waits for its predecessor on another lane
    with pytest.raises(CycleError) as e_err:
        check_lanes(3, [[0], [1], [2]], [[2], [0], [1]], allow_oversubscribe=True)
    assert g_err.value.cycle == e_err.value.cycle == find_cycle([[2], [0], [1]])

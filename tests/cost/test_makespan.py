"""Makespan evaluators against independent pure-Python references and scheduling theory."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.cost import Comm, makespan_batch, times_batch
from tvm_sched.cost.makespan import chain_times, list_times, makespan_chain, makespan_list
from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.testing.brute import brute_makespan, topological_orders
from tvm_sched.testing.dags import canonical_dags, diamond
from tvm_sched.testing.strategies import dag_and_order, dag_and_orders, dags, random_order

# Communication models whose delays are exact binary fractions (see strategies' docstring).
COMMS = st.sampled_from([None, Comm(), Comm(a=0.0, b=1.5), Comm(a=1 / 256, b=0.0),
                         Comm(a=1 / 128, b=0.25)])


# ---------------------------------------------------------------------------- references
def _parents(g: OpGraph) -> list[list[tuple[int, int]]]:
    """Per node: (parent, bytes on the edge)."""
    par: list[list[tuple[int, int]]] = [[] for _ in range(g.num_nodes)]
    for (u, v), b in zip(g.edges, g.edge_bytes.tolist(), strict=True):
        par[v].append((u, b))
    return par


def _delay(comm: Comm | None, nbytes: int) -> float:
    if comm is None:
        return 0.0
    return comm.a * float(nbytes) + comm.b


def ref_chain(g: OpGraph, order, lane, comm: Comm | None = None) -> list[float]:
    """Chain semantics: walk the order; a node waits for its parents and its lane."""
    dur = g.duration.tolist()
    par = _parents(g)
    start = [0.0] * g.num_nodes
    finish: dict[int, float] = {}
    lane_free: dict[int, float] = {}
    for v in order:
        v = int(v)
        t = lane_free.get(int(lane[v]), 0.0)
        for p, nbytes in par[v]:
            d = _delay(comm, nbytes) if lane[p] != lane[v] else 0.0
            t = max(t, finish[p] + d)
        start[v] = t
        finish[v] = t + dur[v]
        lane_free[int(lane[v])] = finish[v]
    return start


def ref_list(g: OpGraph, order, m: int, comm: Comm | None = None):
    """List semantics: each node, in order, on the lane where it starts earliest.

    Ties: the lane with the largest free time, then the lowest index.
    """
    dur = g.duration.tolist()
    par = _parents(g)
    start = [0.0] * g.num_nodes
    lane = [0] * g.num_nodes
    finish: dict[int, float] = {}
    free = [0.0] * m
    for v in order:
        v = int(v)
        best = None
        for ln in range(m):
            t = free[ln]
            for p, nbytes in par[v]:
                d = _delay(comm, nbytes) if lane[p] != ln else 0.0
                t = max(t, finish[p] + d)
            key = (t, -free[ln], ln)
            if best is None or key < best:
                best = key
        t, _, ln = best
        start[v], lane[v] = t, ln
        finish[v] = t + dur[v]
        free[ln] = finish[v]
    return start, lane


def ref_critical_path(g: OpGraph) -> float:
    finish: dict[int, float] = {}
    for v in g.topological_order.tolist():
        finish[v] = max((finish[p] for p in g.preds(v)), default=0.0) + float(g.duration[v])
    return max(finish.values(), default=0.0)


def _makespan(g: OpGraph, start) -> float:
    return max((s + d for s, d in zip(start, g.duration.tolist(), strict=True)), default=0.0)


# ---------------------------------------------------------------------------- hand examples
def test_docstring_examples():
    g = OpGraph(3, [(0, 2), (1, 2)], duration=[2, 3, 1])
    assert makespan_batch(g, np.array([[0, 1, 2], [1, 0, 2]]), lanes=2).tolist() == [4.0, 4.0]
    assert makespan_batch(g, np.array([[0, 1, 2]]), lanes=1).tolist() == [6.0]
    assert Comm(a=1e-3, b=0.5).delay(np.array([0, 1000])).tolist() == [0.5, 1.5]


def test_tie_prefers_the_lane_that_became_free_last():
    # a (1) and b (2) independent, c after b. a -> lane 0, b -> lane 1; c can start at 2 on
    # both lanes and goes to lane 1 (free at 2), not the lower index 0 (free at 1).
    g = OpGraph(3, [(1, 2)], duration=[1, 2, 1])
    start, lane = list_times(g, np.array([0, 1, 2]), 2)
    assert start.tolist() == [0.0, 0.0, 2.0]
    assert lane.tolist() == [0, 1, 1]


def test_tie_between_equally_free_lanes_takes_lowest_index():
    g = OpGraph(3, [], duration=[4, 1, 2])
    start, lane = list_times(g, np.array([0, 1, 2]), 3)
    assert lane.tolist() == [0, 1, 2]
    assert start.tolist() == [0.0, 0.0, 0.0]


def test_comm_keeps_a_child_on_its_parents_lane():
    g = OpGraph(2, [(0, 1)], duration=[1, 1], out_bytes=[100, 0])
    comm = Comm(a=0.01, b=1.0)
    start, lane = list_times(g, np.array([0, 1]), 2, comm=comm)
    assert lane.tolist() == [0, 0] and start.tolist() == [0.0, 1.0]
    # forcing the child onto the other lane costs 0.01 * 100 + 1
    assert chain_times(g, np.array([0, 1]), np.array([0, 1]), comm=comm).tolist() == [0.0, 3.0]
    assert makespan_chain(g, np.array([0, 1]), np.array([0, 1]), comm=comm) == 4.0


def test_diamond_by_hand():
    g = diamond()  # durations 1, 3.5, 2.5, 1.5
    assert makespan_list(g, np.array([0, 1, 2, 3]), 1) == pytest.approx(8.5)
    assert makespan_list(g, np.array([0, 1, 2, 3]), 2) == pytest.approx(1 + 3.5 + 1.5)
    # both branches on lane 0: serial
    assert makespan_chain(g, np.array([0, 2, 1, 3]), np.zeros(4, int)) == pytest.approx(8.5)


def test_comm_rejects_negative_costs():
    with pytest.raises(ValueError, match="must be >= 0"):
        Comm(a=-1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        Comm(b=float("nan"))


def test_bad_shapes_and_lanes_raise():
    g = diamond()
    with pytest.raises(InvalidScheduleError, match=r"shape \(B, 4\)"):
        makespan_batch(g, np.array([[0, 1, 2]]), lanes=2)
    with pytest.raises(InvalidScheduleError, match="at least one lane"):
        makespan_batch(g, np.array([[0, 1, 2, 3]]), lanes=0)
    with pytest.raises(InvalidScheduleError, match="lane must have shape"):
        times_batch(g, np.array([[0, 1, 2, 3]] * 2), lane=np.zeros((3, 4), int))


def test_empty_graph():
    g = OpGraph(0)
    assert makespan_batch(g, np.zeros((3, 0), dtype=np.int64), lanes=2).tolist() == [0.0] * 3
    assert makespan_list(g, np.zeros(0, dtype=np.int64), 2) == 0.0


# ---------------------------------------------------------------------------- vs references
@given(dag_and_order(max_nodes=9), st.integers(1, 4), COMMS, st.randoms(use_true_random=False))
def test_chain_semantics_matches_reference(go, m, comm, rnd):
    g, order = go
    lane = np.array([rnd.randrange(m) for _ in range(g.num_nodes)], dtype=np.int64)
    expect = ref_chain(g, order, lane.tolist(), comm)
    np.testing.assert_array_equal(chain_times(g, order, lane, comm=comm), expect)
    assert makespan_chain(g, order, lane, comm=comm) == _makespan(g, expect)
    start, out_lane = times_batch(g, order[None], lane=lane[None], lanes=m, comm=comm)
    np.testing.assert_array_equal(start[0], expect)
    np.testing.assert_array_equal(out_lane[0], lane)


@given(dag_and_order(max_nodes=9), st.integers(1, 4), COMMS)
def test_list_semantics_matches_reference(go, m, comm):
    g, order = go
    expect_start, expect_lane = ref_list(g, order, m, comm)
    start, lane = list_times(g, order, m, comm=comm)
    np.testing.assert_array_equal(start, expect_start)
    np.testing.assert_array_equal(lane, expect_lane)
    assert makespan_list(g, order, m, comm=comm) == _makespan(g, expect_start)


@given(dag_and_orders(max_nodes=10, max_orders=15), st.integers(1, 4), COMMS,
       st.randoms(use_true_random=False))
def test_batches_match_scalar_references(gos, m, comm, rnd):
    g, orders = gos
    n = g.num_nodes
    # list semantics
    start, lane = times_batch(g, orders, lanes=m, comm=comm)
    values = makespan_batch(g, orders, lanes=m, comm=comm)
    assert values.shape == (len(orders),)
    for b, order in enumerate(orders):
        s, ln = ref_list(g, order, m, comm)
        np.testing.assert_array_equal(start[b], s)
        np.testing.assert_array_equal(lane[b], ln)
        assert values[b] == _makespan(g, s)
    # chain semantics, one lane vector per row
    lanes = np.array([[rnd.randrange(m) for _ in range(n)] for _ in orders], dtype=np.int64)
    lanes = lanes.reshape(len(orders), n)
    start, lane = times_batch(g, orders, lane=lanes, comm=comm)
    values = makespan_batch(g, orders, lane=lanes, comm=comm)
    for b, order in enumerate(orders):
        s = ref_chain(g, order, lanes[b].tolist(), comm)
        np.testing.assert_array_equal(start[b], s)
        assert values[b] == _makespan(g, s)
    np.testing.assert_array_equal(lane, lanes)


def test_batch_over_canonical_dags():
    rnd = random.Random(0)
    for g in canonical_dags().values():
        orders = np.stack([random_order(g, rnd) for _ in range(20)])
        for m, comm in [(1, None), (3, None), (2, Comm(a=1e-4, b=0.5))]:
            values = makespan_batch(g, orders, lanes=m, comm=comm)
            expect = [_makespan(g, ref_list(g, o, m, comm)[0]) for o in orders]
            np.testing.assert_allclose(values, expect, rtol=1e-12)


# ---------------------------------------------------------------------------- properties
@given(dag_and_order(max_nodes=12, exact=False), st.integers(1, 5))
def test_list_makespan_is_at_least_the_lower_bound(go, m):
    g, order = go
    bound = max(ref_critical_path(g), float(sum(g.duration.tolist())) / m)
    assert makespan_list(g, order, m) >= bound - 1e-9 * max(1.0, bound)


@given(dag_and_order(max_nodes=12, exact=False))
def test_one_lane_makespan_is_total_duration(go):
    g, order = go
    total = float(sum(g.duration.tolist()))
    assert makespan_list(g, order, 1) == pytest.approx(total, rel=1e-12, abs=1e-12)
    # one lane never crosses lanes: communication costs nothing
    assert makespan_list(g, order, 1, comm=Comm(a=1.0, b=1.0)) == pytest.approx(total, rel=1e-12,
                                                                                 abs=1e-12)


@given(dag_and_order(max_nodes=12, exact=False), st.integers(0, 3))
def test_enough_lanes_give_the_critical_path(go, extra):
    g, order = go
    m = max(g.num_nodes, 1) + extra
    assert makespan_list(g, order, m) == pytest.approx(ref_critical_path(g), rel=1e-12, abs=1e-12)


@given(dag_and_order(max_nodes=10), st.integers(1, 4), COMMS)
def test_chain_replay_of_list_decoding_gives_same_starts(go, m, comm):
    g, order = go
    start, lane = list_times(g, order, m, comm=comm)
    np.testing.assert_array_equal(chain_times(g, order, lane, comm=comm), start)
    np.testing.assert_array_equal(ref_chain(g, order, lane.tolist(), comm), start)


def _is_topological(g: OpGraph, perm) -> bool:
    pos = {v: k for k, v in enumerate(perm)}
    return all(pos[u] < pos[v] for u, v in g.edges)


@settings(max_examples=25)
@given(dags(min_nodes=1, max_nodes=6))
def test_list_decoding_is_complete_on_two_lanes(g):
    """min over orders of the list makespan == brute force over (order, lanes), chain semantics."""
    n = g.num_nodes
    orders = [p for p in itertools.permutations(range(n)) if _is_topological(g, p)]
    assert sorted(topological_orders(g)) == sorted(orders)
    orders_arr = np.array(orders, dtype=np.int64).reshape(len(orders), n)
    best_list = float(makespan_batch(g, orders_arr, lanes=2).min())
    assignments = np.array(list(itertools.product(range(2), repeat=n)), dtype=np.int64)
    assignments = assignments.reshape(-1, n)
    best_any = np.inf
    for o in orders_arr:
        rows = np.broadcast_to(o, (len(assignments), n))
        best_any = min(best_any, float(makespan_batch(g, rows, lane=assignments).min()))
    assert best_list == best_any
    assert brute_makespan(g, 2) == best_list
    # the chain evaluator used for the brute force is itself the reference semantics
    for a in assignments[:: max(1, len(assignments) // 4)]:
        o = orders_arr[0]
        assert makespan_chain(g, o, a) == _makespan(g, ref_chain(g, o, a.tolist()))

"""Stage-partition cost against plain loops and brute-force partitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.cost import stage_cost_batch
from tvm_sched.cost.stage import (
    check_stages,
    node_weights,
    stage_cost,
    stage_lower_bound,
    stages_from_order,
)
from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.testing.brute import brute_stage
from tvm_sched.testing.dags import canonical_dags, chain, diamond
from tvm_sched.testing.strategies import dag_and_order, dags

WEIGHTS = st.sampled_from(["out_bytes", "duration", "flops"])


def ref_cost(g: OpGraph, stages, num_stages: int, ratio: float, weight: str) -> float:
    w = getattr(g, weight).tolist()
    load = [0.0] * num_stages
    for v in range(g.num_nodes):
        load[int(stages[v])] += w[v]
    cross = 0
    for (u, v), nbytes in zip(g.edges, g.edge_bytes.tolist(), strict=True):
        if nbytes > 0:
            cross += int(stages[v]) - int(stages[u])
    return ratio * max(load) + cross


def best_contiguous_split(weights: list[float], num_stages: int) -> float:
    """Least max chunk sum over every split of ``weights`` into <= num_stages contiguous chunks."""
    n = len(weights)
    if n == 0:
        return 0.0
    best = float("inf")
    for k in range(min(num_stages, n)):
        for cuts in itertools.combinations(range(1, n), k):
            bounds = (0, *cuts, n)
            worst = max(sum(weights[a:b]) for a, b in itertools.pairwise(bounds))
            best = min(best, worst)
    return best


def _legal_assignments(g: OpGraph, num_stages: int):
    for s in itertools.product(range(num_stages), repeat=g.num_nodes):
        if all(s[u] <= s[v] for u, v in g.edges):
            yield s


# ---------------------------------------------------------------------------- by hand
def test_docstring_example():
    g = OpGraph(3, [(0, 1), (1, 2)], out_bytes=[5, 5, 5])
    costs = stage_cost_batch(g, np.array([[0, 0, 1], [0, 1, 1]]), num_stages=2, ratio=1)
    assert costs.tolist() == [11.0, 11.0]


def test_zero_byte_edges_cost_nothing():
    g = OpGraph(3, [(0, 1), (1, 2)], out_bytes=[5, 5, 5], edge_bytes=[0, 7])
    # edge 0 -> 1 carries no data; 1 -> 2 crosses two boundaries
    assert stage_cost(g, np.array([0, 1, 3]), num_stages=4, ratio=2.0) == 2 * 5 + 2


def test_weights_by_name():
    g = diamond()
    np.testing.assert_array_equal(node_weights(g, "duration"), g.duration)
    np.testing.assert_array_equal(node_weights(g), g.out_bytes.astype(float))
    with pytest.raises(ValueError, match="unknown stage weight 'bytes'"):
        node_weights(g, "bytes")


# ---------------------------------------------------------------------------- check_stages
def test_check_stages_accepts_and_converts():
    g = diamond()
    s = check_stages(g, np.array([0.0, 1.0, 0.0, 2.0]), 3)
    assert s.dtype == np.int64 and s.tolist() == [0, 1, 0, 2]


@pytest.mark.parametrize(
    ("stages", "pattern"),
    [
        ([0, 1, 1], r"need one stage per node \(4\)"),
        ([[0, 1, 1, 2]], r"need one stage per node \(4\)"),
        ([0, 1, 1.5, 2], "node 2 has non-integer stage"),
        ([0, 1, 1, 3], r"node 3 is in stage 3; stages are 0..2"),
        ([-1, 1, 1, 2], r"node 0 is in stage -1"),
        ([0, 2, 1, 1], r"edge 1 -> 3 \('diamond_1' -> 'diamond_3'\) is violated"),
        ([1, 0, 1, 2], r"edge 0 -> 1 .* is violated: stage 0 < stage 1"),
    ],
)
def test_check_stages_errors(stages, pattern):
    with pytest.raises(InvalidScheduleError, match=pattern):
        check_stages(diamond(), np.array(stages), 3)
    with pytest.raises(InvalidScheduleError, match=pattern):
        stage_cost(diamond(), np.array(stages), num_stages=3)


def test_stage_cost_batch_rejects_wrong_width():
    with pytest.raises(InvalidScheduleError, match=r"shape \(B, 4\)"):
        stage_cost_batch(diamond(), np.zeros((2, 3), int), num_stages=2)


# ---------------------------------------------------------------------------- vs references
@given(dags(max_nodes=10), st.integers(1, 4), st.sampled_from([0.0, 1.0, 2.5, 100.0]),
       WEIGHTS, st.randoms(use_true_random=False))
def test_cost_matches_reference(g, num_stages, ratio, weight, rnd):
    # a legal assignment: stages nondecreasing along a topological order
    order = g.topological_order.tolist()
    s = np.zeros(g.num_nodes, dtype=np.int64)
    cur = 0
    for v in order:
        cur = min(num_stages - 1, cur + (rnd.random() < 0.4))
        s[v] = cur
    expect = ref_cost(g, s, num_stages, ratio, weight)
    assert stage_cost(g, s, num_stages=num_stages, ratio=ratio, weight=weight) == pytest.approx(
        expect, rel=1e-12, abs=1e-12)
    batch = stage_cost_batch(g, np.stack([s, np.zeros_like(s)]), num_stages=num_stages,
                             ratio=ratio, weight=weight)
    assert batch[0] == pytest.approx(expect, rel=1e-12, abs=1e-12)
    assert batch[1] == pytest.approx(ref_cost(g, np.zeros_like(s), num_stages, ratio, weight),
                                     rel=1e-12, abs=1e-12)


@given(dag_and_order(max_nodes=9), st.integers(1, 5), WEIGHTS)
def test_stages_from_order_is_a_best_contiguous_split(go, num_stages, weight):
    g, order = go
    s = stages_from_order(g, order, num_stages=num_stages, weight=weight)
    assert s.shape == (g.num_nodes,) and s.dtype == np.int64
    check_stages(g, s, num_stages)  # legal
    along = s[order]
    assert np.all(np.diff(along) >= 0)  # contiguous chunks of the order
    assert len(set(s.tolist())) <= num_stages
    if g.num_nodes:
        assert along[0] == 0
        assert np.all(np.diff(along) <= 1)  # no empty stage in the middle
    w = getattr(g, weight).astype(float)
    loads = [float(w[s == d].sum()) for d in range(num_stages)]
    best = best_contiguous_split(w[order].tolist(), num_stages)
    if weight == "out_bytes":
        assert max(loads, default=0.0) == best
    else:
        assert max(loads, default=0.0) == pytest.approx(best, rel=1e-9, abs=1e-12)


@settings(max_examples=20)
@given(dags(min_nodes=1, max_nodes=6, int_durations=True), st.integers(1, 3),
       st.sampled_from([0.5, 1.0, 10.0]), WEIGHTS)
def test_lower_bound_below_brute_force_optimum(g, num_stages, ratio, weight):
    legal = list(_legal_assignments(g, num_stages))
    optimum = min(ref_cost(g, s, num_stages, ratio, weight) for s in legal)
    brute = brute_stage(g, num_stages=num_stages, ratio=ratio, weight=weight)
    assert brute == pytest.approx(optimum, rel=1e-12, abs=1e-12)
    lb = stage_lower_bound(g, num_stages=num_stages, ratio=ratio, weight=weight)
    assert lb <= optimum + 1e-9


@given(dag_and_order(min_nodes=2, max_nodes=9, max_out_bytes=4, relabel=False),
       st.integers(2, 4))
def test_stages_from_order_with_small_weights(go, num_stages):
    # small integer weights: a capacity one above the best changes the split, so an off-by-one
    # in the binary search shows
    g, order = go
    s = stages_from_order(g, order, num_stages=num_stages)
    w = g.out_bytes.tolist()
    loads = [sum(w[v] for v in range(g.num_nodes) if s[v] == d) for d in range(num_stages)]
    assert max(loads) == best_contiguous_split([w[v] for v in order.tolist()], num_stages)
    # greedy fill at the best capacity: the first stage is as full as it may be
    along = s[order]
    first = [w[v] for v, d in zip(order.tolist(), along.tolist(), strict=True) if d == 0]
    nxt = [w[v] for v, d in zip(order.tolist(), along.tolist(), strict=True) if d == 1]
    if nxt:
        assert sum(first) + nxt[0] > max(loads)


def test_lower_bound_by_hand():
    g = chain(4)  # out_bytes 768, 256, 1024, 512
    assert stage_lower_bound(g, num_stages=2, ratio=1.0) == max(2560 / 2, 1024)
    assert stage_lower_bound(g, num_stages=4, ratio=2.0) == 2 * 1024
    assert stage_lower_bound(OpGraph(0), num_stages=3) == 0.0


def test_stages_from_order_on_canonical_dags():
    for g in canonical_dags().values():
        for d in (1, 2, 3, 7):
            s = stages_from_order(g, g.topological_order, num_stages=d)
            check_stages(g, s, d)
            w = g.out_bytes.astype(float)
            loads = [w[s == k].sum() for k in range(d)]
            assert max(loads) == best_contiguous_split(w[g.topological_order].tolist(), d)


def test_stages_from_order_edge_cases():
    g = OpGraph(3, [(0, 1)], out_bytes=[0, 0, 0])
    assert stages_from_order(g, np.array([0, 1, 2]), num_stages=3).tolist() == [0, 0, 0]
    assert stages_from_order(OpGraph(0), np.zeros(0, int), num_stages=2).tolist() == []
    # real weights: the binary search on a real capacity still finds the best split
    g = OpGraph(4, [], duration=[0.1, 0.2, 0.3, 0.4])
    s = stages_from_order(g, np.array([0, 1, 2, 3]), num_stages=2, weight="duration")
    assert s.tolist() == [0, 0, 0, 1]  # loads 0.6 and 0.4 (0.3 + 0.4 = 0.7 would be worse)

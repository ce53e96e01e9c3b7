"""Liveness peak memory against an explicit simulation with a set of live buffers."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings

from tvm_sched.cost import peak_memory, peak_memory_batch
from tvm_sched.cost.memory import memory_lower_bound, memory_profile, memory_profile_batch
from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.testing.brute import brute_peak_memory
from tvm_sched.testing.dags import canonical_dags, chain, random_dag
from tvm_sched.testing.strategies import dag_and_order, dag_and_orders, dags, random_order


def ref_profile(g: OpGraph, order) -> list[int]:
    """Allocate at the node's step; free after the step of its last consumer (after its own step
    when nobody reads it); never free an output."""
    consumers: list[list[int]] = [[] for _ in range(g.num_nodes)]
    for u, v in g.edges:
        consumers[u].append(v)
    size = g.out_bytes.tolist()
    outputs = g.is_output.tolist()
    done: set[int] = set()
    live: set[int] = set()
    profile = []
    for v in order:
        v = int(v)
        live.add(v)
        profile.append(sum(size[u] for u in live))
        done.add(v)
        for u in sorted(live):
            if not outputs[u] and all(c in done for c in consumers[u]):
                live.remove(u)
    return profile


def ref_lower_bound(g: OpGraph) -> int:
    size = g.out_bytes.tolist()
    per_step = [size[v] + sum(size[p] for p in g.preds(v)) for v in range(g.num_nodes)]
    outputs = sum(s for s, o in zip(size, g.is_output.tolist(), strict=True) if o)
    return max(per_step + [outputs], default=0)


def test_docstring_example():
    g = OpGraph(4, [(0, 1), (0, 2), (1, 3), (2, 3)], out_bytes=[4, 2, 8, 1])
    assert peak_memory_batch(g, np.array([[0, 1, 2, 3], [0, 2, 1, 3]])).tolist() == [14, 14]


def test_profile_by_hand():
    # 0 -> 1 -> 2 and 0 -> 2; node 3 independent and an output; node 4 reads nothing, read by none
    g = OpGraph(5, [(0, 1), (1, 2), (0, 2)], out_bytes=[10, 20, 40, 5, 7],
                is_output=[False, False, False, True, False])
    # steps: 0 -> {0}=10; 3 -> {0,3}=15; 1 -> {0,3,1}=35; 4 -> {0,3,1,4}=42 (4 freed after);
    #        2 -> {0,3,1,2}=75 (0, 1 and 2 freed after; 2 has no consumer)
    assert memory_profile(g, np.array([0, 3, 1, 4, 2])).tolist() == [10, 15, 35, 42, 75]
    assert peak_memory(g, np.array([0, 3, 1, 4, 2])) == 75
    # the output stays live to the end
    assert memory_profile(g, np.array([3, 0, 1, 2, 4])).tolist() == [5, 15, 35, 75, 12]


def test_output_chain_accumulates():
    g = OpGraph(3, [(0, 1), (1, 2)], out_bytes=[1, 2, 4], is_output=[True, True, True])
    assert memory_profile(g, np.array([0, 1, 2])).tolist() == [1, 3, 7]


def test_bad_shape_raises():
    with pytest.raises(InvalidScheduleError, match=r"shape \(B, 4\)"):
        memory_profile_batch(chain(4), np.array([[0, 1, 2]]))


def test_empty_graph():
    g = OpGraph(0)
    assert peak_memory_batch(g, np.zeros((2, 0), dtype=np.int64)).tolist() == [0, 0]
    assert memory_lower_bound(g) == 0


def test_canonical_dags_against_reference():
    for g in canonical_dags().values():
        order = g.topological_order
        assert memory_profile(g, order).tolist() == ref_profile(g, order)


@given(dag_and_order(max_nodes=12))
def test_profile_and_peak_match_reference(go):
    g, order = go
    expect = ref_profile(g, order)
    prof = memory_profile(g, order)
    assert prof.dtype == np.int64
    assert prof.tolist() == expect
    assert peak_memory(g, order) == max(expect, default=0)


@given(dag_and_orders(max_nodes=12, max_orders=10))
def test_batch_equals_scalar_equals_reference(gos):
    g, orders = gos
    profiles = memory_profile_batch(g, orders)
    peaks = peak_memory_batch(g, orders)
    assert profiles.shape == orders.shape and peaks.shape == (len(orders),)
    for b, order in enumerate(orders):
        expect = ref_profile(g, order)
        assert profiles[b].tolist() == expect
        assert memory_profile(g, order).tolist() == expect
        assert peaks[b] == peak_memory(g, order) == max(expect, default=0)


@given(dag_and_orders(max_nodes=12, max_orders=10))
def test_lower_bound_never_exceeds_a_peak(gos):
    g, orders = gos
    lb = memory_lower_bound(g)
    assert lb == ref_lower_bound(g)
    assert np.all(peak_memory_batch(g, orders) >= lb)


@settings(max_examples=20)
@given(dags(min_nodes=1, max_nodes=6))
def test_lower_bound_and_brute_force_over_all_orders(g):
    orders = [p for p in itertools.permutations(range(g.num_nodes))
              if all(p.index(u) < p.index(v) for u, v in g.edges)]
    peaks = [max(ref_profile(g, o)) for o in orders]
    assert brute_peak_memory(g) == min(peaks)
    assert memory_lower_bound(g) <= min(peaks)


def test_order_changes_peak():
    # two independent pairs 0 -> 1 and 2 -> 3: finishing one pair before starting the other
    # frees the big tensor 0 early
    g = OpGraph(4, [(0, 1), (2, 3)], out_bytes=[100, 1, 50, 1])
    assert peak_memory(g, np.array([0, 1, 2, 3])) == 101
    assert peak_memory(g, np.array([0, 2, 1, 3])) == 151
    assert peak_memory(g, np.array([2, 0, 1, 3])) == 151
    assert memory_lower_bound(g) == 101


def test_random_dag_peak_between_bound_and_total():
    g = random_dag(30, 0.1, seed=4)
    rnd = random.Random(4)
    orders = np.stack([random_order(g, rnd) for _ in range(50)])
    peaks = peak_memory_batch(g, orders)
    assert peaks.tolist() == [max(ref_profile(g, o)) for o in orders]
    assert np.all(peaks >= memory_lower_bound(g))
    assert np.all(peaks <= int(g.out_bytes.sum()))

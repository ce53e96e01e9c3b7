"""The LRU cache-miss proxy against a list-based LRU written independently, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.cost import cache_miss_bytes, cache_miss_bytes_batch
from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.testing.strategies import dag_and_order


def ref_misses(g: OpGraph, order, cap: int) -> int:
    """A plain list as the recency stack (front = most recent), trimmed to what fits."""
    size = g.out_bytes.tolist()
    stack: list[int] = []
    missed = 0

    def use(t: int) -> None:
        if t in stack:
            stack.remove(t)
        stack.insert(0, t)  # a tensor larger than the cache leaves an empty prefix
        kept, total = [], 0
        for x in stack:  # keep the most recent prefix that fits
            if total + size[x] > cap:
                break
            kept.append(x)
            total += size[x]
        stack[:] = kept

    for v in order:
        for u in g.preds(int(v)):
            if u not in stack:
                missed += size[u]
            use(u)
        use(int(v))
    return missed


@settings(max_examples=150, deadline=None)
@given(dag_and_order(), st.integers(0, 400))
def test_matches_reference_lru(case, cap):
    g, order = case
    assert cache_miss_bytes(g, order, cap) == ref_misses(g, order, cap)


@settings(max_examples=100, deadline=None)
@given(dag_and_order())
def test_bounds_and_monotone_in_cache_size(case):
    g, order = case
    reads = int(sum(g.out_bytes[u] for u, _ in g.edges))
    values = [cache_miss_bytes(g, order, c) for c in (0, 8, 32, 128, 10**12)]
    assert values[0] == reads  # nothing cached: every read misses
    assert values[-1] == 0  # everything fits: nothing is read twice from memory
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # inclusion property


def test_a_tensor_larger_than_the_cache_flushes_it():
    # found by hypothesis: when the big tensor 1 was skipped without flushing, the 8-byte
    # cache kept 0 and missed less than the 32-byte cache, which cached 1 and evicted 0.
    g = OpGraph(3, [(0, 2)], out_bytes=[8, 16, 1])
    assert cache_miss_bytes(g, [0, 1, 2], 8) == 8  # 1 streamed through and flushed 0
    assert cache_miss_bytes(g, [0, 1, 2], 32) == 0


def test_reuse_distance_decides():
    # 0 feeds 1 and 3; 2 is a big unrelated tensor. Reading 0 right after it was written hits;
    # putting 2 (which evicts 0) in between makes the second read of 0 miss.
    g = OpGraph(4, [(0, 1), (0, 3)], out_bytes=[10, 1, 20, 1])
    assert cache_miss_bytes(g, [0, 1, 3, 2], 21) == 0
    assert cache_miss_bytes(g, [0, 1, 2, 3], 21) == 10
    batch = cache_miss_bytes_batch(g, np.array([[0, 1, 3, 2], [0, 1, 2, 3]]), 21)
    assert batch.tolist() == [0, 10]


def test_bad_input():
    g = OpGraph(2, [(0, 1)])
    with pytest.raises(InvalidScheduleError):
        cache_miss_bytes(g, [0, 0], 4)
    with pytest.raises(ValueError, match="cache_bytes"):
        cache_miss_bytes(g, [0, 1], -1)

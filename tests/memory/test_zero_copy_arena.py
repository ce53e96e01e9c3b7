"""Merged tensors in the arena planner (zero-copy concatenation): on random DAGs with concatenate
nodes run on random lanes, no live tensor is ever overwritten -- checked against an independent
reading of the graph, value by value (each slice is a value written by its producer and read by
its own readers and by the concatenation's)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvm_sched.errors import InvalidGraphError
from tvm_sched.graph import OpGraph, random_order
from tvm_sched.memory import ALIGN, arena_tensors, happens_before_from_lanes, plan_arena


@st.composite
def concat_dags(draw, max_nodes: int = 12):
    """(graph, concat nodes): a random DAG whose ``meta["planner"]`` merges some nodes' inputs
    into their outputs as slices (64-byte multiples, so offsets stay aligned)."""
    n = draw(st.integers(2, max_nodes))
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n)]
    edges = sorted(draw(st.sets(st.sampled_from(pairs), max_size=min(len(pairs), 3 * n))))
    preds = [[u for u, w in edges if w == v] for v in range(n)]
    sizes = [ALIGN * draw(st.integers(1, 4)) for _ in range(n)]
    planned = [True] * n
    merged, taken = [], set()
    for v in draw(st.permutations(range(n))):
        ins = [u for u in preds[v] if u not in taken and u not in {c for c, _ in merged}]
        if v in taken or not ins or not draw(st.booleans()) or len(ins) != len(preds[v]):
            continue
        offs, top = [], 0
        for u in ins:
            offs.append([u, 0, top])
            top += sizes[u]
        sizes[v] = top
        taken.update(ins)
        merged.append((v, offs))
    if not merged:
        return None
    for v in range(n):  # sinks that are neither merged nor slices may be outputs
        if not any(u == v for u, _ in edges) and v not in taken and v not in dict(merged):
            planned[v] = draw(st.booleans())
    meta = {"planner": {"dtypes": ["float32"], "kind": ["alloc"] * n,
                        "out": [[[sizes[v], 0, planned[v]]] for v in range(n)],
                        "reads": [[[u, 0] for u in preds[v]] for v in range(n)],
                        "merged": [[c, offs] for c, offs in merged]}}
    g = OpGraph(n, edges, out_bytes=sizes, is_output=[not p for p in planned], meta=meta)
    return g, [c for c, _ in merged]


def _values(graph: OpGraph, plan):
    """Per value (a planned tensor that is not merged, or a slice of a merged one): its bytes,
    its writer and its readers, read off the graph's metadata alone."""
    info = graph.meta["planner"]
    n = graph.num_nodes
    readers = {v: [w for w in range(n) if [v, 0] in info["reads"][w]] for v in range(n)}
    merged = {c: offs for c, offs in info["merged"]}
    slice_of = {u: c for c, offs in merged.items() for u, _, _ in offs}
    out = []
    for v in range(n):
        if not info["out"][v][0][2] or v in merged:
            continue
        size = info["out"][v][0][0]
        off = plan.offset_of(v)
        rd = set(readers[v])
        if v in slice_of:
            c = slice_of[v]
            rd |= {c, *readers[c]}
            base = plan.offset_of(c)
            d = next(o for u, _, o in merged[c] if u == v)
            assert off == base + d, f"slice {v} is not at its place in node {c}'s output"
            assert d + size <= info["out"][c][0][0]
        out.append((v, off, off + size, rd - {v}))
    return out


def _check_safe(graph, plan, before):
    vals = _values(graph, plan)
    for _, lo, hi, _ in vals:
        assert 0 <= lo and hi <= plan.arena_bytes
    for i, (a, alo, ahi, ard) in enumerate(vals):
        for b, blo, bhi, brd in vals[i + 1:]:
            if alo >= bhi or blo >= ahi:
                continue
            a_first = all(before(u, b) for u in (a, *ard))
            b_first = all(before(u, a) for u in (b, *brd))
            assert a_first or b_first, f"values of nodes {a} and {b} share bytes while live"


def _lanes(graph, order, lane, skip):
    chains = [[] for _ in range(max(lane) + 1)]
    for v in order:
        if v not in skip:
            chains[lane[v]].append(int(v))
    return [c for c in chains if c]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), lanes=st.integers(1, 4))
def test_no_live_value_is_overwritten_under_lanes(data, lanes):
    drawn = data.draw(concat_dags())
    if drawn is None:
        return
    g, concats = drawn
    order = random_order(g, random.Random(data.draw(st.integers(0, 2**31))))
    lane = [data.draw(st.integers(0, lanes - 1)) for _ in range(g.num_nodes)]
    chains = _lanes(g, order, lane, set(concats))  # a concatenate runs no code
    hb = happens_before_from_lanes(g, chains, every_node=False)
    plan = plan_arena(g, order, happens_before=hb, method="greedy")
    _check_safe(g, plan, lambda u, w: bool(hb[u, w]))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_live_value_is_overwritten_in_order(data):
    drawn = data.draw(concat_dags())
    if drawn is None:
        return
    g, _ = drawn
    order = random_order(g, random.Random(data.draw(st.integers(0, 2**31))))
    pos = np.empty(g.num_nodes, dtype=np.int64)
    pos[order] = np.arange(g.num_nodes)
    plan = plan_arena(g, order, method="greedy")
    _check_safe(g, plan, lambda u, w: bool(pos[u] < pos[w]))


def test_a_merged_tensor_is_one_tensor_written_by_its_slices_producers():
    meta = {"planner": {"kind": ["alloc"] * 4,
                        "out": [[[64, 0, True]], [[128, 0, True]], [[192, 0, True]],
                                [[8, 0, False]]],
                        "reads": [[], [], [[0, 0], [1, 0]], [[2, 0], [0, 0]]],
                        "merged": [[2, [[0, 0, 0], [1, 0, 64]]]]}}
    g = OpGraph(4, [(0, 2), (1, 2), (2, 3), (0, 3)], out_bytes=[64, 128, 192, 8],
                is_output=[0, 0, 0, 1], meta=meta)
    (t,) = arena_tensors(g)
    assert (t.node, t.size, t.writers, t.readers) == (2, 192, (0, 1), (3,))
    plan = plan_arena(g, [0, 1, 2, 3])
    assert plan.arena_bytes == 192
    assert (plan.offset_of(0), plan.offset_of(1), plan.offset_of(2)) == (0, 64, 0)


@pytest.mark.parametrize("merged", [
    [[2, [[0, 0, 160]]]],  # past the end
    [[2, [[0, 0, 32]]]],  # not aligned
    [[2, [[0, 0, 0], [0, 0, 64]]]],  # one slice twice
    [[2, [[0, 0, 0], [1, 0, 0]]]],  # overlapping slices
    [[2, [[0, 0, 0]]], [0, [[1, 0, 0]]]],  # a slice that is also merged
    [[3, [[0, 0, 0]]]],  # not planned
])
def test_malformed_merges_are_refused(merged):
    meta = {"planner": {"kind": ["alloc"] * 4,
                        "out": [[[64, 0, True]], [[128, 0, True]], [[192, 0, True]],
                                [[8, 0, False]]],
                        "reads": [[], [], [[0, 0], [1, 0]], [[2, 0]]],
                        "merged": merged}}
    g = OpGraph(4, [(0, 2), (1, 2), (2, 3)], out_bytes=[64, 128, 192, 8],
                is_output=[0, 0, 0, 1], meta=meta)
    with pytest.raises(InvalidGraphError):
        arena_tensors(g)

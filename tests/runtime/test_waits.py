"""Cross-lane waits are sufficient and minimal; happens-before is the closure (no TVM)."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.graph import OpGraph
from tvm_sched.runtime.waits import happens_before, lane_waits
from tvm_sched.schedule import Schedule
from tvm_sched.testing.strategies import random_order


def _closure(n, preds, order):
    reach = [set() for _ in range(n)]
    for v in order:
        for u in preds[v]:
            reach[v] |= reach[u] | {u}
    return reach


@st.composite
def dag_and_schedule(draw):
    n = draw(st.integers(2, 14))
    edges = sorted({(u, v) for v in range(n) for u in range(v)
                    if draw(st.floats(0, 1)) < 0.3})
    graph = OpGraph(n, edges)
    lanes = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    order = random_order(graph, random.Random(int(rng.integers(2**31)))).tolist()
    lane = tuple(int(x) for x in rng.integers(0, lanes, n))
    is_step = [bool(x) for x in rng.random(n) < 0.85]  # some nodes are views
    return graph, Schedule(order=tuple(order), lane=lane), is_step


@settings(max_examples=60)
@given(dag_and_schedule())
def test_waits_are_sufficient_and_minimal(case):
    graph, sched, is_step = case
    chains, waits = lane_waits(graph, sched, is_step)
    n = graph.num_nodes
    # chains: kernel nodes only, each once, in schedule order, no empty lane
    flat = [v for c in chains for v in c]
    assert sorted(flat) == [v for v in range(n) if is_step[v]]
    assert all(chains)
    lane_of = {v: k for k, c in enumerate(chains) for v in c}
    prev = {c[i]: c[i - 1] for c in chains for i in range(1, len(c))}
    for v, ws in waits.items():
        assert all(lane_of[w] != lane_of[v] for w in ws)

    def step_preds(drop=None):
        p = [[] for _ in range(n)]
        for v in flat:
            if v in prev:
                p[v].append(prev[v])
            p[v] += [w for w in waits[v] if (v, w) != drop]
        return p

    hb = happens_before(graph, chains, waits, sched.order)
    reach = _closure(n, step_preds(), sched.order)
    # sufficient: every kernel producer (through views) of a kernel node happens before it
    for v in flat:
        stack, producers = list(graph.preds(v)), set()
        while stack:
            u = stack.pop()
            if is_step[u]:
                producers.add(u)
            else:
                stack.extend(graph.preds(u))
        assert producers <= reach[v]
        assert all(hb[u, v] for u in producers)
    # minimal: dropping any wait loses a required dependency
    for v in flat:
        for w in waits[v]:
            r = _closure(n, step_preds(drop=(v, w)), sched.order)
            assert w not in r[v]
    # hb is transitively closed and contains every data edge
    hbi = hb.astype(int)
    assert not np.any(((hbi @ hbi) > 0) & ~hb)
    assert all(hb[u, v] for u, v in graph.edges)
    assert not np.any(np.diag(hb))


def test_one_lane_needs_no_waits():
    g = OpGraph(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    chains, waits = lane_waits(g, Schedule(order=(0, 2, 1, 3)), [True] * 4)
    assert chains == [[0, 2, 1, 3]]
    assert all(not w for w in waits.values())


def test_diamond_on_two_lanes_waits_once_per_crossing():
    g = OpGraph(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    sched = Schedule(order=(0, 1, 2, 3), lane=(0, 0, 1, 0))
    chains, waits = lane_waits(g, sched, [True] * 4)
    assert chains == [[0, 1, 3], [2]]
    assert waits == {0: [], 1: [], 2: [0], 3: [2]}

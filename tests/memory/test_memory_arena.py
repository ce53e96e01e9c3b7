"""The arena planner: no two tensors that can be live at once share a byte, on random DAGs."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.cost import ArenaMemory, make_objective
from tvm_sched.errors import InvalidGraphError, InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.memory import (
    ALIGN,
    arena_bytes_batch,
    arena_lower_bound,
    arena_tensors,
    happens_before_from_lanes,
    pack,
    plan_arena,
)
from tvm_sched.testing.strategies import dag_and_order, random_order


def overlap(a0, s0, a1, s1) -> bool:
    return a0 < a1 + s1 and a1 < a0 + s0


def live_steps(graph: OpGraph, order, tensor) -> set[int]:
    pos = {int(v): i for i, v in enumerate(order)}
    first = pos[tensor.node]
    last = max([first, *(pos[r] for r in tensor.readers)])
    return set(range(first, last + 1))


def check_sequential(graph: OpGraph, order, plan) -> None:
    steps = [live_steps(graph, order, t) for t in plan.tensors]
    for i, j in itertools.combinations(range(len(plan.tensors)), 2):
        ti, tj = plan.tensors[i], plan.tensors[j]
        if ti.size and tj.size and steps[i] & steps[j]:
            assert not overlap(plan.offsets[i], ti.size, plan.offsets[j], tj.size), (i, j)
    for t, o in zip(plan.tensors, plan.offsets, strict=True):
        assert o % ALIGN == 0
        assert o + t.size <= plan.arena_bytes
    assert plan.arena_bytes % ALIGN == 0
    assert plan.arena_bytes >= plan.lower_bound


@settings(max_examples=150, deadline=None)
@given(dag_and_order(max_nodes=14), st.sampled_from(["greedy", "auto"]))
def test_no_two_live_tensors_share_a_byte(case, method):
    graph, order = case
    plan = plan_arena(graph, order, method=method, budget=2.0)
    check_sequential(graph, order, plan)
    # function outputs and empty tensors are not in the arena
    nodes = {t.node for t in plan.tensors}
    assert all(not graph.is_output[v] and graph.out_bytes[v] > 0 for v in nodes)
    # the objective is the greedy packing of the same order
    assert ArenaMemory().evaluate_orders(graph, np.asarray(order)[None])[0] == \
        plan_arena(graph, order, method="greedy").arena_bytes


@settings(max_examples=100, deadline=None)
@given(dag_and_order(max_nodes=12), st.integers(1, 3), st.randoms(use_true_random=False))
def test_concurrent_lanes_respect_happens_before(case, m, rnd):
    """Two tensors share bytes only if every use of one happens-before the other's producer."""
    graph, order = case
    lanes: list[list[int]] = [[] for _ in range(m)]
    for v in order:  # a random lane assignment; each lane runs its nodes in `order`
        lanes[rnd.randrange(m)].append(int(v))
    hb = happens_before_from_lanes(graph, lanes)
    plan = plan_arena(graph, order, happens_before=hb, method="greedy")
    ts = plan.tensors
    for i, j in itertools.combinations(range(len(ts)), 2):
        if not (ts[i].size and ts[j].size) or not overlap(plan.offsets[i], ts[i].size,
                                                            plan.offsets[j], ts[j].size):
            continue
        i_then_j = all(hb[u, ts[j].node] for u in (ts[i].node, *ts[i].readers))
        j_then_i = all(hb[u, ts[i].node] for u in (ts[j].node, *ts[j].readers))
        assert i_then_j or j_then_i, (ts[i], ts[j])
    assert plan.arena_bytes >= plan.lower_bound
    if m == 1:  # one lane is the sequential order: never more than the sequential plan
        assert plan.arena_bytes <= plan_arena(graph, order, method="greedy").arena_bytes


def brute_force_arena(sizes, conf) -> int:
    """Every placement order, each tensor at the lowest offset that fits: the optimum."""
    best = None
    for perm in itertools.permutations(range(len(sizes))):
        off = {}
        for t in perm:
            o = 0
            moved = True
            while moved:
                moved = False
                for u, ou in off.items():
                    if conf[t][u] and overlap(o, sizes[t], ou, sizes[u]):
                        o = ou + sizes[u]
                        moved = True
            off[t] = o
        top = max((off[t] + sizes[t] for t in off), default=0)
        best = top if best is None else min(best, top)
    return best or 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda t: st.tuples(
    st.lists(st.integers(1, 5), min_size=t, max_size=t),
    st.lists(st.booleans(), min_size=t * t, max_size=t * t))))
def test_exact_packing_equals_brute_force(case):
    units, flat = case
    t = len(units)
    conf = np.array(flat, dtype=bool).reshape(t, t)
    conf = conf | conf.T
    np.fill_diagonal(conf, False)
    sizes = [u * ALIGN for u in units]
    offs, total, proven = pack(sizes, conf, method="exact", budget=5.0)
    assert proven
    assert total == brute_force_arena(sizes, conf.tolist())
    for i, j in itertools.combinations(range(t), 2):
        if conf[i, j]:
            assert not overlap(offs[i], sizes[i], offs[j], sizes[j])


def test_views_alias_their_producer_and_outputs_are_not_reused():
    # 0 -> view 1 -> 2 -> 3 (output); the view has no tensor of its own, reads of it are reads
    # of 0; 0 stays live until 2, the last reader through the view.
    meta = {"dtypes": ["float32"], "kind": ["alloc", "view", "alloc", "alloc"],
            "out": [[[256, 0, True]], [], [[256, 0, True]], [[64, 0, False]]],
            "reads": [[], [], [[0, 0]], [[2, 0]]]}
    g = OpGraph(4, [(0, 1), (1, 2), (2, 3)], out_bytes=[256, 256, 256, 64],
                is_output=[0, 0, 0, 1], meta={"planner": meta})
    ts = arena_tensors(g)
    assert [(t.node, t.readers) for t in ts] == [(0, (2,)), (2, (3,))]
    plan = plan_arena(g, [0, 1, 2, 3])
    assert plan.offset_of(1) is None and plan.offset_of(3) is None  # view, function output
    assert plan.arena_bytes == 512  # 0 is read by 2: they cannot share
    assert plan.lower_bound == 512


def test_arena_reaches_liveness_peak_where_tokens_cannot():
    # A freed 256-byte tensor can hold two later 128-byte tensors at once in an arena; TVM's
    # token planner would give the second one a new token.
    g = OpGraph(4, [(0, 1), (0, 2), (1, 3), (2, 3)], out_bytes=[256, 128, 128, 64],
                is_output=[0, 0, 0, 1])
    plan = plan_arena(g, [0, 1, 2, 3])
    assert plan.lower_bound == 512 and plan.arena_bytes == 512
    g2 = OpGraph(5, [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4)],
                 out_bytes=[256, 64, 128, 128, 64], is_output=[0, 0, 0, 0, 1])
    plan2 = plan_arena(g2, [0, 1, 2, 3, 4])
    assert plan2.arena_bytes == plan2.lower_bound == 320


@settings(max_examples=40, deadline=None)
@given(dag_and_order(max_nodes=10))
def test_lower_bound_holds_for_every_order(case):
    graph, _ = case
    lb = arena_lower_bound(graph)
    rnd = random.Random(0)
    orders = np.array([random_order(graph, rnd) for _ in range(5)])
    assert (arena_bytes_batch(graph, orders) >= lb).all()
    obj = make_objective("arena_memory")
    assert obj.lower_bound(graph) == lb


def test_bad_input_is_rejected_clearly():
    g = OpGraph(3, [(0, 1), (1, 2)], out_bytes=[64, 64, 64])
    with pytest.raises(InvalidScheduleError, match="permutation"):
        plan_arena(g, [0, 1])
    with pytest.raises(InvalidScheduleError, match="happens_before must have shape"):
        plan_arena(g, [0, 1, 2], happens_before=np.zeros((2, 2), dtype=bool))
    with pytest.raises(InvalidScheduleError, match="cycle"):
        happens_before_from_lanes(g, [[2, 1, 0]])
    with pytest.raises(InvalidScheduleError, match="on 0 lanes"):
        happens_before_from_lanes(g, [[0, 1]])
    with pytest.raises(ValueError, match="method"):
        pack([64], np.zeros((1, 1), dtype=bool), method="best")
    bad = OpGraph(2, [(0, 1)], meta={"planner": {"out": [[]], "reads": [[]]}})
    with pytest.raises(InvalidGraphError, match="describes 1 nodes"):
        arena_tensors(bad)
    with pytest.raises(ValueError, match="one lane"):
        make_objective("arena_memory", lanes=2)


def test_exact_packing_leaves_ctrl_c_to_python():
    # CP-SAT's own SIGINT handler resets SIGINT to the default action when a solve ends: a later
    # Ctrl-C (or a test's SIGINT) then killed the whole process instead of raising
    # KeyboardInterrupt. Run in a child process: the failure mode is death by signal.
    import subprocess
    import sys

    code = (
        "import signal, numpy as np\n"
        "from tvm_sched.memory import pack\n"
        "pack([64, 128, 192], np.ones((3, 3), dtype=bool), method='exact', budget=1.0)\n"
        "try:\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
    assert proc.stdout.strip() == "KeyboardInterrupt"


def test_remembered_values_survive_a_full_memo(monkeypatch):
    # the memo is cleared when full; a batch mixing remembered and new orders used to look the
    # remembered ones up after the clear (KeyError in tutorial 01)
    from tvm_sched.memory import arena as arena_mod

    monkeypatch.setattr(arena_mod, "_SCORES_PER_GRAPH", 2)
    g = OpGraph(4, [(0, 2), (1, 2), (2, 3)], out_bytes=[64, 128, 64, 64], is_output=[0, 0, 0, 1])
    orders = np.array([[0, 1, 2, 3], [1, 0, 2, 3]])
    first = arena_bytes_batch(g, orders[:1])
    both = arena_bytes_batch(g, orders[[0, 1, 1]])
    assert both[0] == first[0] and both[1] == both[2]
    assert both.tolist() == [plan_arena(g, o, method="greedy").arena_bytes
                             for o in orders[[0, 1, 1]]]

"""Heuristic solvers: known answers on constructed graphs, optimality where theory gives it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.cost import Makespan, PeakMemory, peak_memory
from tvm_sched.cost.makespan import list_times, makespan_list
from tvm_sched.graph import (
    OpGraph,
    bfs_order,
    dfs_order,
    lpmf_order,
    priority_order,
    priority_orders_batch,
)
from tvm_sched.solvers import solve
from tvm_sched.solvers.decoding import list_schedule
from tvm_sched.testing.brute import brute_makespan, brute_peak_memory
from tvm_sched.testing.dags import random_dag


def two_branches(width: int = 4) -> OpGraph:
    """A root feeding two chains that join: BFS interleaves them, DFS finishes one first."""
    edges = [(0, 1), (0, 1 + width)]
    for k in range(width - 1):
        edges += [(1 + k, 2 + k), (1 + width + k, 2 + width + k)]
    sink = 1 + 2 * width
    edges += [(width, sink), (2 * width, sink)]
    return OpGraph(sink + 1, edges, out_bytes=[10] * (sink + 1))


def test_dfs_and_bfs_orders_on_two_branches():
    g = two_branches(3)
    assert dfs_order(g).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert bfs_order(g).tolist() == [0, 1, 4, 2, 5, 3, 6, 7]
    # both hold three 10-byte tensors at their peak (by hand: DFS 10,20,30,30,30,30,30,30)
    assert peak_memory(g, dfs_order(g)) == 30
    assert peak_memory(g, bfs_order(g)) == 30


def test_lpmf_runs_the_branch_that_frees_memory_first():
    # 0 -> big(1) -> 3 ; 0 -> small(2) -> 4 (4 frees 2) ; 3, 4 -> 5
    g = OpGraph(6, [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)],
                out_bytes=[1, 100, 50, 1, 1, 1])
    order = lpmf_order(g)
    assert order.tolist() == [0, 2, 4, 1, 3, 5]
    assert peak_memory(g, order) == brute_peak_memory(g)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), p=st.floats(0, 0.5), seed=st.integers(0, 999))
def test_orders_are_topological(n, p, seed):
    g = random_dag(n, p, seed=seed)
    rng = np.random.default_rng(seed)
    for order in (dfs_order(g), bfs_order(g), lpmf_order(g),
                  priority_order(g, rng.random(n)),
                  *priority_orders_batch(g, rng.random((3, n)))):
        assert sorted(order.tolist()) == list(range(n))
        pos = np.empty(n, int)
        pos[order] = np.arange(n)
        assert np.all(pos[g.src] < pos[g.dst])


def test_priority_orders_batch_matches_the_scalar_version():
    g = random_dag(25, 0.2, seed=9)
    pr = np.random.default_rng(0).random((5, 25))
    batch = priority_orders_batch(g, pr)
    for row, p in zip(batch, pr, strict=True):
        assert row.tolist() == priority_order(g, p).tolist()


def test_list_scheduling_is_optimal_with_enough_lanes():
    g = random_dag(20, 0.15, seed=1)
    s = list_schedule(g, lanes=20)
    assert max(np.asarray(s.start) + g.duration) == pytest.approx(g.critical_path_length)


def test_list_scheduling_on_independent_tasks_is_lpt_like():
    # Graham's bound: with independent tasks list scheduling is within 2 - 1/m of optimal
    g = OpGraph(7, [], duration=[5, 5, 4, 4, 3, 3, 3])
    res = solve(g, Makespan(lanes=2), solver="list")
    assert res.value <= (2 - 1 / 2) * brute_makespan(g, 2)
    # priorities are the durations, so this is LPT: 5,4,3,3 | 5,4,3 -> 15, optimum 14
    assert res.value == 15 and brute_makespan(g, 2) == 14
    assert res.best.validate(g) is None


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 7), p=st.floats(0, 0.6), seed=st.integers(0, 999),
       lanes=st.integers(1, 3))
def test_list_within_graham_bound_of_brute_force(n, p, seed, lanes):
    g = random_dag(n, p, seed=seed)
    opt = brute_makespan(g, lanes)
    val = solve(g, Makespan(lanes=lanes), solver="list").value
    assert opt - 1e-9 <= val <= (2 - 1 / lanes) * opt + 1e-9


def test_list_schedule_start_times_match_the_chain_evaluator():
    g = random_dag(40, 0.1, seed=6)
    s = list_schedule(g, lanes=3)
    obj = Makespan(lanes=3)
    full = obj.complete(g, s)
    assert np.allclose(full.start, s.start)
    # and its order, list-decoded, is never worse
    assert makespan_list(g, np.array(s.order), 3) <= max(np.asarray(s.start) + g.duration) + 1e-9
    start, lane = list_times(g, np.array(s.order), 3)
    assert np.all(start <= np.asarray(s.start) + 1e-9)


def test_random_list_never_worse_than_random_on_average():
    g = random_dag(60, 0.06, seed=12)
    obj = Makespan(lanes=4)
    r = solve(g, obj, solver="random", samples=300)
    rl = solve(g, obj, solver="random-list", samples=300)
    assert rl.info["mean_value"] <= r.info["mean_value"]


def test_lpmf_not_worse_than_bfs_on_branchy_graph():
    g = two_branches(6)
    assert solve(g, PeakMemory(), solver="lpmf").value <= solve(g, PeakMemory(),
                                                               solver="topo-bfs").value


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 14), st.floats(0.1, 0.6), st.integers(0, 10_000), st.integers(1, 4),
       st.integers(1, 3))
def test_event_driven_decoding_keeps_the_k_best_exact_schedules(n, p, seed, lanes, k):
    from tvm_sched.solvers.decoding import EventDecoded

    g = random_dag(n, p, seed=seed)
    obj = Makespan(lanes=lanes)
    rng = np.random.default_rng(seed)
    orders = priority_orders_batch(g, rng.random((6, n)))
    ev = EventDecoded(k)
    ev.add(g, orders[:3], obj)
    ev.add(g, orders[3:], obj)
    spans = []
    for o in orders:  # each order's positions as priorities, decoded one by one
        pos = np.empty(n)
        pos[o] = -np.arange(n)
        s = list_schedule(g, lanes, priority=pos)
        spans.append(float(np.max(np.asarray(s.start) + g.duration)))
    cands = ev.candidates()
    assert 1 <= len(cands) <= k
    values = [c.claimed for c in cands]
    assert values == sorted(values) and ev.best == values[0]
    assert values[0] <= min(spans) + 1e-9  # chain semantics never start later
    assert len({(c.schedule.order, c.schedule.lane) for c in cands}) == len(cands)
    for c in cands:
        assert c.schedule.is_valid(g)
        assert c.claimed == obj.evaluate(g, c.schedule)
        assert c.schedule.info["decoding"] == "event-driven"


def test_samplers_report_which_decoding_won_and_are_never_worse_than_either():
    # a wide graph where the serial rule leaves a lane idle: every sampler sees both decodings
    from tvm_sched.solvers import get_solver
    from tvm_sched.solvers.decoding import EventDecoded

    g = random_dag(60, 0.08, seed=3)
    obj = Makespan(lanes=2)
    res = get_solver("random-list", samples=64, top_k=3).solve(g, obj, seed=1)
    rng = np.random.default_rng(1)  # the solver's own draw, replayed
    solver = get_solver("random-list", samples=64)
    orders = priority_orders_batch(g, solver.priorities(g, rng, 64))
    ev = EventDecoded(1)
    ev.add(g, orders, obj)
    assert res.value <= min(float(obj.evaluate_orders(g, orders).min()), ev.best) + 1e-9
    gfn = get_solver("gflownet", samples=64, seeds=False).solve(g, obj, seed=0)
    assert gfn.info["best_decoding"] in ("serial", "event-driven")
    assert gfn.value == obj.evaluate(g, gfn.best)

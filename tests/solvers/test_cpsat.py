"""Tests of the CP-SAT solver: brute-force optima on tiny graphs, scaling, budgets, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvm_sched.cost import Comm, Makespan, PeakMemory, StageCost
from tvm_sched.errors import SolverError
from tvm_sched.graph import OpGraph
from tvm_sched.solvers import Status, get_solver
from tvm_sched.solvers.cpsat import CPSATSolver
from tvm_sched.solvers.cpsat.common import map_status, to_fraction, to_integers
from tvm_sched.solvers.cpsat.makespan import assign_lanes
from tvm_sched.solvers.cpsat.memory import step_bounds
from tvm_sched.testing.brute import brute_makespan, brute_peak_memory, brute_stage

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def exact_solver(**kw) -> CPSATSolver:
    return CPSATSolver(num_workers=1, time_limit_s=20.0, **kw)


@st.composite
def dags(draw, max_nodes: int, min_nodes: int = 1, min_duration: int = 1) -> OpGraph:
    """Random DAGs: edges i -> j (i < j) of a random set, then nodes relabelled at random."""
    n = draw(st.integers(min_nodes, max_nodes))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    keep = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    perm = draw(st.permutations(range(n)))
    edges = [(perm[i], perm[j]) for (i, j), k in zip(pairs, keep, strict=True) if k]
    ints = lambda lo, hi: st.lists(st.integers(lo, hi), min_size=n, max_size=n)  # noqa: E731
    return OpGraph(
        n,
        edges,
        duration=draw(ints(min_duration, 5)),
        out_bytes=draw(ints(1, 20)),
        is_output=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
    )


def fixed_graphs() -> list[OpGraph]:
    chain = OpGraph(4, [(0, 1), (1, 2), (2, 3)], duration=[2, 1, 3, 1], out_bytes=[4, 3, 2, 1])
    diamond = OpGraph(4, [(0, 1), (0, 2), (1, 3), (2, 3)], duration=[1, 3, 2, 1],
                      out_bytes=[4, 2, 8, 1], is_output=[False, False, False, True])
    fork = OpGraph(6, [(0, k) for k in range(1, 6)], duration=[1, 2, 3, 4, 2, 2],
                   out_bytes=[7, 1, 2, 3, 4, 5], is_output=[False, True, False, True, False, False])
    zero = OpGraph(5, [(0, 2), (1, 2), (2, 3), (2, 4)], duration=[3, 2, 0, 1, 0],
                   out_bytes=[1, 2, 3, 4, 5])
    return [chain, diamond, fork, zero]


def check_result(res, graph: OpGraph, expected: float) -> None:
    assert res.status is Status.OPTIMAL
    assert res.value == pytest.approx(expected, abs=1e-9)
    assert res.objective.evaluate(graph, res.best) == pytest.approx(res.value, abs=1e-9)
    assert res.bound <= res.value + 1e-9


# ---------------------------------------------------------------------------- makespan
@SETTINGS
@given(dags(max_nodes=8))
def test_makespan_matches_brute_force(graph):
    for lanes in (1, 2, 3):
        obj = Makespan(lanes)
        res = exact_solver().solve(graph, obj)
        check_result(res, graph, brute_makespan(graph, lanes))
        assert res.best.lane is not None and max(res.best.lane) < lanes
        assert res.info["scaled"] is False


@SETTINGS
@given(dags(max_nodes=6, min_duration=0),
       st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([0.0, 1.0, 2.0]))
def test_makespan_with_comm_matches_brute_force(graph, a, b):
    comm = Comm(a, b)
    res = exact_solver().solve(graph, Makespan(2, comm))
    check_result(res, graph, brute_makespan(graph, 2, comm))


@pytest.mark.parametrize("lanes", [1, 2, 3])
@pytest.mark.parametrize("case", range(4))
def test_makespan_fixed_cases(case, lanes):
    graph = fixed_graphs()[case]
    check_result(exact_solver().solve(graph, Makespan(lanes)), graph,
                 brute_makespan(graph, lanes))
    comm = Comm(0.5, 1.0)
    if graph.num_nodes <= 6 and lanes <= 2:
        check_result(exact_solver().solve(graph, Makespan(lanes, comm)), graph,
                     brute_makespan(graph, lanes, comm))


def test_makespan_more_lanes_than_nodes():
    graph = OpGraph(3, [(0, 2)], duration=[2, 5, 1])
    res = exact_solver().solve(graph, Makespan(8, Comm(0.0, 3.0)))
    check_result(res, graph, 5.0)


def test_assign_lanes_moves_zero_duration_node_out_of_a_full_instant():
    # A and B fill both lanes on [0, 4); the zero-duration Z sits at 2 (the cumulative lets it);
    # its successor C starts at 4. The sweep must put Z at 4 on a lane, not at 2.
    graph = OpGraph(4, [(2, 3)], duration=[4, 4, 0, 1])
    start = np.array([0, 0, 2, 4])
    order, eff, lane = assign_lanes(graph, start, np.array([4, 4, 0, 1]), 2)
    assert eff.tolist() == [0, 0, 4, 4]
    assert lane[0] != lane[1]
    assert list(order)[:2] in ([0, 1], [1, 0])
    assert Makespan(2).evaluate(graph, _sched(order, eff, lane)) == 5.0


def _sched(order, start, lane):
    from tvm_sched.schedule import Schedule

    return Schedule(order=order, start=start, lane=lane)


def test_fractional_durations_are_scaled_and_not_claimed():
    # three independent tasks on 2 lanes: the optimum (sqrt2 + sqrt3) is above the trivial bound
    graph = OpGraph(3, [], duration=[math.sqrt(2), math.sqrt(3), math.sqrt(5)])
    res = exact_solver().solve(graph, Makespan(2))
    assert res.status is Status.FEASIBLE
    assert res.info["scaled"] is True
    assert res.value >= brute_makespan(graph, 2) - 1e-9
    assert res.value == pytest.approx(math.sqrt(2) + math.sqrt(3))
    assert res.bound == pytest.approx(Makespan(2).lower_bound(graph))


@pytest.mark.parametrize("comm", [None, Comm(1e-4, 0.5), Comm(0.3, 0.0)])
def test_fractional_durations_with_edges_give_valid_schedules(comm):
    rng = np.random.default_rng(0)
    graph = OpGraph(6, [(0, 1), (1, 2), (0, 3), (3, 4), (2, 5), (4, 5)],
                    duration=rng.uniform(0.5, 2.0, 6), out_bytes=rng.integers(1, 9, 6))
    obj = Makespan(2, comm)
    res = exact_solver().solve(graph, obj)
    assert res.info["scaled"] is True
    res.best.validate(graph, lanes=2)
    assert obj.evaluate(graph, res.best) == pytest.approx(res.value)
    assert res.value >= brute_makespan(graph, 2, comm) - 1e-9
    assert res.value <= brute_makespan(graph, 2, comm) * 1.01


def test_rational_durations_are_exact():
    graph = OpGraph(4, [(0, 3), (1, 3)], duration=[0.5, 1.25, 0.75, 0.25])
    res = exact_solver().solve(graph, Makespan(2))
    check_result(res, graph, brute_makespan(graph, 2))
    assert res.info["scaled"] is False


# ---------------------------------------------------------------------------- memory
@SETTINGS
@given(dags(max_nodes=8))
def test_peak_memory_matches_brute_force(graph):
    res = exact_solver().solve(graph, PeakMemory())
    check_result(res, graph, brute_peak_memory(graph))


@pytest.mark.parametrize("case", range(4))
def test_peak_memory_fixed_cases(case):
    graph = fixed_graphs()[case]
    check_result(exact_solver().solve(graph, PeakMemory()), graph, brute_peak_memory(graph))


def test_peak_memory_zero_byte_nodes():
    graph = OpGraph(5, [(0, 1), (0, 2), (1, 3), (2, 4)], out_bytes=[0, 6, 5, 0, 0])
    check_result(exact_solver().solve(graph, PeakMemory()), graph, brute_peak_memory(graph))


def test_step_bounds_are_ancestor_and_descendant_counts():
    graph = OpGraph(5, [(0, 1), (1, 2), (0, 3)])
    lo, hi = step_bounds(graph)
    assert lo.tolist() == [0, 1, 2, 1, 0]
    assert hi.tolist() == [1, 3, 4, 4, 4]


# ---------------------------------------------------------------------------- stage
@SETTINGS
@given(dags(max_nodes=6), st.integers(2, 3), st.sampled_from([0.0, 1.0, 2.5, 100.0]))
def test_stage_matches_brute_force(graph, stages, ratio):
    obj = StageCost(stages=stages, ratio=ratio)
    res = exact_solver().solve(graph, obj)
    check_result(res, graph, brute_stage(graph, num_stages=stages, ratio=ratio))
    s = np.asarray(res.best.start)
    assert np.all(s[graph.src] <= s[graph.dst])


@pytest.mark.parametrize("stages", [2, 3])
@pytest.mark.parametrize("case", range(4))
def test_stage_fixed_cases(case, stages):
    graph = fixed_graphs()[case]
    for weight in ("out_bytes", "duration"):
        obj = StageCost(stages=stages, ratio=3.0, weight=weight)
        check_result(exact_solver().solve(graph, obj), graph,
                     brute_stage(graph, num_stages=stages, ratio=3.0, weight=weight))


def test_stage_irrational_ratio_is_not_claimed():
    graph = fixed_graphs()[2]
    obj = StageCost(stages=3, ratio=math.pi)
    res = exact_solver().solve(graph, obj)
    assert res.info["scaled"] is True
    assert res.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert res.value >= brute_stage(graph, num_stages=3, ratio=math.pi) - 1e-9


# ---------------------------------------------------------------------------- budgets, bounds
def random_dag(n: int, p: float, seed: int) -> OpGraph:
    rng = np.random.default_rng(seed)
    src, dst = np.nonzero(np.triu(rng.random((n, n)) < p, k=1))
    return OpGraph(n, list(zip(src.tolist(), dst.tolist(), strict=True)),
                   duration=rng.integers(1, 20, n), out_bytes=rng.integers(1, 100, n),
                   is_output=rng.random(n) < 0.05)


BUDGET_OBJECTIVES = [Makespan(4), Makespan(3, Comm(0.1, 1.0)), PeakMemory(), StageCost(stages=5)]


def check_valid(res, graph: OpGraph, objective) -> None:
    latency = 0.0 if isinstance(objective, StageCost) else None
    res.best.validate(graph, lanes=objective.lanes, latency=latency)
    assert objective.evaluate(graph, res.best) == pytest.approx(res.value)
    assert res.bound <= res.value + 1e-9


@pytest.mark.parametrize("objective", BUDGET_OBJECTIVES)
def test_tiny_budget_is_a_result_not_an_exception(objective):
    graph = random_dag(100, 0.05, seed=10)
    res = CPSATSolver(num_workers=2, fallback=False).solve(graph, objective, budget=0.2)
    if res.status is Status.TIME_LIMIT:
        assert len(res) == 0 and res.value == math.inf
    else:
        assert res.status in (Status.FEASIBLE, Status.OPTIMAL)
        check_valid(res, graph, objective)
    # with the fallback (the default) a schedule always comes back
    res = CPSATSolver(num_workers=2).solve(graph, objective, budget=0.2)
    assert res.status in (Status.FEASIBLE, Status.OPTIMAL)
    check_valid(res, graph, objective)


@pytest.mark.parametrize("objective", BUDGET_OBJECTIVES)
def test_spent_budget_returns_warm_start_or_time_limit(objective):
    graph = random_dag(40, 0.1, seed=7)
    res = CPSATSolver(fallback=False).solve(graph, objective, budget=0.0)
    assert res.status is Status.TIME_LIMIT and len(res) == 0
    assert res.info["cp_status"] == "NOT_RUN"
    res = CPSATSolver().solve(graph, objective, budget=0.0)
    assert res.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert res.info["fallback"] == "warm_start"
    check_valid(res, graph, objective)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("objective", [Makespan(3), PeakMemory(), StageCost(stages=4, ratio=2)])
def test_value_never_below_bound(seed, objective):
    graph = random_dag(30, 0.15, seed)
    res = CPSATSolver(num_workers=2, time_limit_s=0.5).solve(graph, objective)
    assert res.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert res.bound <= res.value + 1e-9
    assert res.bound >= objective.lower_bound(graph) - 1e-9
    assert objective.evaluate(graph, res.best) == pytest.approx(res.value)


def test_top_k_returns_distinct_valid_schedules_best_first():
    graph = random_dag(14, 0.2, seed=4)
    res = CPSATSolver(num_workers=1, top_k=3, hint=False).solve(graph, Makespan(2))
    assert 1 <= len(res) <= 3
    assert list(res.values) == sorted(res.values)
    assert len({(s.order, s.start, s.lane) for s in res}) == len(res)
    for s, v in zip(res, res.values, strict=True):
        assert Makespan(2).evaluate(graph, s) == pytest.approx(v)


def test_without_hint_same_optimum():
    graph = fixed_graphs()[1]
    a = exact_solver(hint=True).solve(graph, Makespan(2, Comm(1.0, 0.0)))
    b = exact_solver(hint=False).solve(graph, Makespan(2, Comm(1.0, 0.0)))
    assert a.value == b.value and a.status is b.status is Status.OPTIMAL


def test_empty_graph():
    res = exact_solver().solve(OpGraph(0), Makespan(2))
    assert res.value == 0.0 and res.status is Status.OPTIMAL


def test_registry_name():
    solver = get_solver("cpsat", num_workers=1)
    assert isinstance(solver, CPSATSolver)
    assert solver.name == "cpsat"
    assert set(solver.objectives) == {"makespan", "peak_memory", "stage"}


# ---------------------------------------------------------------------------- common
def test_to_integers():
    s = to_integers(np.array([3.0, 0.0, 7.0]), 1000)
    assert s.exact and s.factor == 1.0 and s.values.tolist() == [3, 0, 7]
    s = to_integers(np.array([0.5, 0.2]), 1000)
    assert s.exact and s.factor == 10.0 and s.values.tolist() == [5, 2]
    s = to_integers(np.array([math.e, 1.0]), 1000)
    assert not s.exact and s.values.tolist() == [1000, 368]
    s = to_integers(np.array([2.0**40, 2.0**40]), 1000, limit=2**40)
    assert not s.exact and s.values.sum() <= 2**40


def test_to_fraction():
    assert to_fraction(100.0, 1000) == (100, 1, True)
    assert to_fraction(0.1, 1000) == (1, 10, True)
    assert to_fraction(math.pi, 1000)[2] is False


def test_map_status_model_invalid_raises():
    from ortools.sat.python import cp_model

    assert map_status(cp_model.OPTIMAL, True) is Status.OPTIMAL
    assert map_status(cp_model.OPTIMAL, False) is Status.FEASIBLE
    assert map_status(cp_model.FEASIBLE, True) is Status.FEASIBLE
    assert map_status(cp_model.INFEASIBLE, True) is Status.INFEASIBLE
    assert map_status(cp_model.UNKNOWN, True) is Status.TIME_LIMIT
    with pytest.raises(SolverError):
        map_status(cp_model.MODEL_INVALID, True)


def test_run_raises_on_an_invalid_model():
    from ortools.sat.python import cp_model

    from tvm_sched.solvers.cpsat.common import CPModel, run

    model = cp_model.CpModel()
    x = model.new_int_var(3, 1, "x")  # an empty domain: CP-SAT answers MODEL_INVALID
    model.minimize(x)
    cpm = CPModel(model, [x], lambda values: None)
    with pytest.raises(SolverError, match="no domain"):
        run(cpm, time_limit_s=1.0, num_workers=1, seed=0)

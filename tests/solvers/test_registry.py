"""Registry and the solver contract enforced by the base class."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tvm_sched.cost import Makespan
from tvm_sched.errors import SolverError, SolverUnavailableError, UnknownSolverError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.solvers import Candidate, Proposal, Solver, get_solver, registry, solve, solver_names
from tvm_sched.solvers.base import Status

DESIGN_NAMES = {"topo-dfs", "topo-bfs", "tvm", "list", "lpmf", "random", "random-list", "cpsat",
                "gaus", "gumbel", "gflownet"}


def test_design_names_are_registered():
    assert DESIGN_NAMES <= set(solver_names())


def test_tvm_is_the_program_order():
    g = OpGraph(4, [(0, 3), (1, 3), (2, 3)])
    assert solve(g, "peak_memory", solver="tvm").best.order == (0, 1, 2, 3)
    backwards = OpGraph(3, [(2, 1), (1, 0)])  # ids not in topological order: lowest id first
    assert solve(backwards, "makespan", solver="tvm").best.order == (2, 1, 0)


def test_unknown_solver_lists_known_names():
    with pytest.raises(UnknownSolverError, match="unknown solver 'foo'.*list"):
        get_solver("foo")


def test_bad_option_names_the_known_ones():
    with pytest.raises(TypeError, match="samples"):
        get_solver("random", sample=3)


def test_missing_package_gives_install_hint(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "ghost", "no_such_pkg_xyz.mod:Ghost")
    with pytest.raises(SolverUnavailableError, match="no_such_pkg_xyz"):
        get_solver("ghost")


def test_unsupported_objective_is_a_clear_error():
    class OnlyMakespan(Solver):
        name = "only-makespan"
        objectives = ("makespan",)

    with pytest.raises(ValueError, match="does not handle the 'peak_memory'"):
        OnlyMakespan().solve(OpGraph(1, []), "peak_memory")


def _liar(claim: float, status=Status.FEASIBLE, bound=None):
    class Liar(Solver):
        name = "liar"

        @dataclass(frozen=True)
        class Config:
            top_k: int = 1

        def _propose(self, graph, objective, deadline, rng, device):
            return Proposal([Candidate(Schedule(order=range(len(graph))), claim)], status, bound)

    return Liar()


def test_a_claim_the_exact_evaluator_contradicts_is_a_solver_error():
    g = OpGraph(3, [(0, 1), (1, 2)], duration=[1, 1, 1])
    with pytest.raises(SolverError, match="claimed makespan = 2 but the exact evaluator gives 3"):
        _liar(2.0).solve(g, Makespan(lanes=2))
    assert _liar(3.0).solve(g, Makespan(lanes=2)).value == 3.0


def test_a_value_below_the_proven_bound_is_a_solver_error():
    g = OpGraph(2, [], duration=[1, 1])
    with pytest.raises(SolverError, match="below the proven lower bound"):
        _liar(None, bound=3.0).solve(g, Makespan(lanes=1))


def test_value_at_the_bound_is_reported_optimal():
    g = OpGraph(3, [(0, 1), (1, 2)], duration=[1, 2, 3])
    res = solve(g, Makespan(lanes=2), solver="topo-bfs")
    assert res.proven and res.value == res.bound == 6.0


def test_result_is_a_sequence_of_schedules():
    g = OpGraph(3, [(0, 2), (1, 2)])
    res = solve(g, "makespan", solver="random", lanes=2, samples=10, top_k=3)
    assert res[0] == res.best and len(list(res)) == len(res) <= 3
    d = res.to_dict()
    assert d["status"] in {s.value for s in Status} and d["schedule"]["order"]


def test_lanes_shortcut_must_agree_with_objective():
    with pytest.raises(ValueError, match="contradicts"):
        solve(OpGraph(1, []), Makespan(lanes=2), lanes=3)

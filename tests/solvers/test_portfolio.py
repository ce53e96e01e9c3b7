"""The shared candidate generator (tvm_sched.solvers.portfolio): what every caller relies on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.cost import make_objective
from tvm_sched.datasets.generators import generate
from tvm_sched.errors import UnknownSolverError
from tvm_sched.schedule import Schedule
from tvm_sched.solvers import Candidate, Proposal, Solver, registry
from tvm_sched.solvers.portfolio import propose
from tvm_sched.testing.strategies import dags

FIXED = ["tvm", "topo-dfs", "topo-bfs", "list", "lpmf", "random-list"]


@settings(max_examples=40, deadline=None)
@given(dags(min_nodes=1, max_nodes=12),
       st.sampled_from(["makespan", "peak_memory", "planned_memory", "arena_memory"]),
       st.integers(1, 4))
def test_proposals_are_distinct_valid_and_exactly_valued(g, name, lanes):
    objective = make_objective(name, lanes=lanes if name == "makespan" else None)
    got = propose(g, objective, FIXED, samples=16, per_solver=3)
    keys = set()
    for p in got:
        s = p.schedule
        assert s.is_valid(g)
        if name == "makespan":
            assert s.lane is not None and max(s.lane) < lanes
        assert p.value == pytest.approx(float(objective.evaluate(g, s)), rel=1e-12, abs=0)
        key = (tuple(s.order), s.lane)
        assert key not in keys
        keys.add(key)
    # every solver is accounted for: it proposed (possibly only as an alias) or said why not
    named = {q.source for q in got} | {a.split("#")[0] for q in got for a in q.aliases}
    assert named == set(FIXED)
    assert all(got.info[n]["proposals"] <= 3 for n in FIXED)


def test_duplicates_become_aliases_of_the_first_name():
    g = generate("layered", 30, seed=3)
    got = propose(g, "peak_memory", ["topo-dfs", "topo-dfs", "tvm", "lpmf"])
    names = [p.name for p in got]
    assert names.count("topo-dfs") == 1  # a repeated name runs once
    every = names + [a for p in got for a in p.aliases]
    assert sorted(every) == ["lpmf", "topo-dfs", "tvm"]


def test_unknown_solver_fails_before_any_work(monkeypatch):
    ran = []
    monkeypatch.setattr(registry, "get_solver", lambda *a, **k: ran.append(a))
    with pytest.raises(UnknownSolverError, match="no-such-solver"):
        propose(generate("layered", 10, seed=0), "makespan", ["list", "no-such-solver"])
    assert ran == []


@dataclass(frozen=True)
class _Config:
    top_k: int = 1
    samples: int | None = None
    marker: str = ""


class _PeakOnly(Solver):
    """Handles liveness only (not the other memory objectives); records its options."""

    name = "test-peak-only"
    objectives: ClassVar = ("peak_memory",)
    order_memory = False
    Config = _Config
    seen: ClassVar[list] = []

    def _propose(self, graph, objective, deadline, rng, device):
        type(self).seen.append((objective.name, self.config))
        return Proposal([Candidate(Schedule(order=tuple(graph.topological_order)))])


class _Broken(Solver):
    name = "test-broken"
    Config = _Config

    def _propose(self, graph, objective, deadline, rng, device):
        raise RuntimeError("boom")


@pytest.fixture
def fake_solvers(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "test-peak-only", _PeakOnly)
    monkeypatch.setitem(registry._REGISTRY, "test-broken", _Broken)
    _PeakOnly.seen = []
    return _PeakOnly


def test_fallback_objective_and_revalued_on_the_requested_one(fake_solvers):
    g = generate("sbm", 40, seed=5)
    planned = make_objective("planned_memory")
    got = propose(g, planned, ["test-peak-only"], samples=7, per_solver=2,
                  options={"test-peak-only": {"marker": "x"}})
    (p,) = got.proposals
    assert p.solved_on == "peak_memory" and got.info["test-peak-only"]["objective"] == "peak_memory"
    assert p.value == float(planned.evaluate(g, p.schedule))
    assert fake_solvers.seen == [("peak_memory", _Config(top_k=2, samples=7, marker="x"))]
    # no fallback for makespan: skipped, said why
    got = propose(g, make_objective("makespan", lanes=2), ["test-peak-only", "list"])
    assert [p.source for p in got] == ["list"]
    assert "handles none" in got.info["test-peak-only"]["error"]


def test_a_failing_solver_is_skipped_and_the_rest_go_on(fake_solvers, caplog):
    g = generate("layered", 20, seed=1)
    got = propose(g, "makespan", ["test-broken", "list"])
    assert [p.source for p in got] == ["list"]
    assert "boom" in got.info["test-broken"]["error"]
    assert "test-broken skipped" in caplog.text


def test_max_nodes_skips_a_solver_on_larger_graphs():
    g = generate("layered", 40, seed=2)
    calls = []
    got = propose(g, "peak_memory", ["cpsat", "lpmf"], max_nodes={"cpsat": 39},
                  progress=calls.append)
    assert [p.source for p in got] == ["lpmf"]
    assert "40 nodes > 39" in got.info["cpsat"]["skipped"]
    assert calls == ["cpsat", "lpmf"]

"""GauS: optimality on tiny graphs against brute force, legality, infeasibility, anytime loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tvm_sched.cost import Makespan, PeakMemory, Pipeline, StageCost
from tvm_sched.errors import InfeasibleError
from tvm_sched.graph import OpGraph
from tvm_sched.solvers import get_solver
from tvm_sched.solvers.gaus import GauSSolver
from tvm_sched.solvers.gaus.distributions import expected_shortfall, step_mass
from tvm_sched.testing.brute import brute_makespan, brute_peak_memory, brute_stage
from tvm_sched.testing.dags import random_dag

#: Stated gap to the brute-force optimum on the tiny graphs below (stage partition); makespan and
#: peak memory must be optimal there.
STAGE_GAP = 0.02

FAST = dict(restarts=6, steps=40, rounds=2)


def tiny(seed: int) -> OpGraph:
    return random_dag(6, 0.35, seed=seed, int_durations=True)


def test_step_mass_from_phi_sums_to_one_and_matches_difference():
    mu = torch.tensor([[0.3, 2.0, 5.7]], dtype=torch.float64)
    sig = torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)
    m = step_mass(mu, sig, 6)
    assert torch.allclose(m.sum(-1), torch.ones(1, 3, dtype=torch.float64))
    nd = torch.distributions.Normal(mu[0, 1], sig[0, 1])
    assert float(m[0, 1, 2]) == pytest.approx(float(nd.cdf(torch.tensor(2.5)) -
                                                     nd.cdf(torch.tensor(1.5))))


def test_closed_form_shortfall_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    x = 0.4 + 1.3 * torch.randn(400_000, generator=g, dtype=torch.float64)
    mc = torch.relu(1.0 - x).mean()
    cf = expected_shortfall(torch.tensor(0.4, dtype=torch.float64),
                            torch.tensor(1.3, dtype=torch.float64),
                            torch.tensor(1.0, dtype=torch.float64))
    assert float(cf) == pytest.approx(float(mc), rel=1e-2)


@pytest.mark.parametrize("seed", range(4))
def test_optimal_or_within_gap_of_brute_force(seed):
    g = tiny(seed)
    s = GauSSolver(**FAST)
    assert s.solve(g, Makespan(lanes=2), seed=seed).value == brute_makespan(g, 2)
    assert s.solve(g, PeakMemory(), seed=seed).value == brute_peak_memory(g)
    obj = StageCost(stages=3, ratio=2.0)
    res = s.solve(g, obj, seed=seed)
    best = brute_stage(g, num_stages=3, ratio=2.0)
    assert best <= res.value <= best * (1 + STAGE_GAP)
    res.best.validate(g, latency=0.0)


def test_pipeline_schedules_are_legal_and_near_the_critical_path():
    g = random_dag(8, 0.3, seed=1, int_durations=True)
    rec = ((int(g.topological_order[-1]), int(g.topological_order[0]), 2),)
    obj = Pipeline(ii=int(g.total_duration // 2) + 4, lanes=2, recurrences=rec)
    res = GauSSolver(**FAST).solve(g, obj, seed=0)
    assert obj.evaluate(g, res.best) == res.value
    assert res.value >= g.critical_path_length


def test_infeasible_inputs_name_the_bound():
    g = OpGraph(3, [(0, 1), (1, 2)], duration=[1, 2, 1])
    with pytest.raises(InfeasibleError, match="recurrence bound"):
        GauSSolver().solve(g, Pipeline(ii=3, lanes=2, recurrences=((2, 0, 1),)))
    with pytest.raises(InfeasibleError, match="resource bound"):
        GauSSolver().solve(g, Pipeline(ii=1, lanes=1))
    with pytest.raises(InfeasibleError, match="below the critical path"):
        GauSSolver(horizon=3).solve(g, Makespan(lanes=2))
    with pytest.raises(InfeasibleError, match="below the critical path"):
        GauSSolver(horizon=3).solve(g, Pipeline(ii=4, lanes=1))


@pytest.mark.parametrize("obj", [Makespan(lanes=3), PeakMemory(), StageCost(stages=4),
                                 "pipeline"])
def test_zero_budget_returns_the_legal_initialisation(obj):
    g = random_dag(30, 0.1, seed=2, int_durations=True)
    if obj == "pipeline":
        obj = Pipeline(ii=int(g.total_duration) // 2 + 10, lanes=2)
    res = GauSSolver().solve(g, obj, budget=0.0)
    assert len(res) == 1 and res.info["steps"] == 0
    assert obj.evaluate(g, res.best) == res.value


def test_anytime_loop_improves_on_its_initialisation_and_is_deterministic():
    g = random_dag(40, 0.1, seed=3)
    obj = StageCost(stages=5, ratio=1.0)
    a = GauSSolver(**FAST).solve(g, obj, seed=5)
    b = GauSSolver(**FAST).solve(g, obj, seed=5)
    assert a.schedules == b.schedules
    assert a.value <= a.info["init_value"]
    assert a.info["rounds"] >= 1 and a.info["steps"] >= 1
    times = [t for t, _ in a.info["history"]]
    vals = [v for _, v in a.info["history"]]
    assert times == sorted(times) and vals == sorted(vals, reverse=True)


def test_registry_and_device_auto():
    import torch

    g = random_dag(12, 0.2, seed=0)
    res = get_solver("gaus", **FAST).solve(g, "makespan", device="auto")
    assert res.info["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    res.best.validate(g)


def test_top_k_returns_distinct_sorted_schedules():
    g = random_dag(20, 0.15, seed=4)
    res = GauSSolver(top_k=3, **FAST).solve(g, Makespan(lanes=2))
    assert len({s.order for s in res}) == len(res) >= 2
    assert list(res.values) == sorted(res.values)


def test_memory_objectives_are_ranked_by_their_exact_evaluator():
    from tvm_sched.cost import PeakMemory, PlannedMemory

    g = random_dag(25, 0.15, seed=6)
    for obj in (PeakMemory(), PlannedMemory()):
        res = GauSSolver(**FAST).solve(g, obj, seed=0)
        assert res.value == obj.evaluate(g, res.best)
        assert res.value >= obj.lower_bound(g)


def test_unsupported_objective_and_bad_config():
    from dataclasses import dataclass

    from tvm_sched.cost import Objective

    @dataclass(frozen=True)
    class Energy(Objective):
        name = "energy"

    g = random_dag(5, 0.3, seed=0)
    with pytest.raises(ValueError, match="does not handle"):
        GauSSolver().solve(g, Energy())
    with pytest.raises(ValueError, match="restarts"):
        GauSSolver(restarts=0).solve(g, Makespan())


def test_wide_dynamic_range_durations_keep_their_precision():
    # kernels from 1 us to 100 ms: the relaxation must not round the small ones up to a step
    rng = np.random.default_rng(0)
    base = random_dag(40, 0.1, seed=9)
    dur = 10.0 ** rng.uniform(-6, -1, base.num_nodes)
    g = base.replace(duration=dur)
    obj = Makespan(lanes=3)
    res = GauSSolver(**FAST).solve(g, obj, seed=0)
    lst = get_solver("list").solve(g, obj)
    assert res.value <= lst.value * (1 + 1e-12)
    assert res.value == obj.evaluate(g, res.best)
    # the relaxation sees every duration exactly (in steps of q), none rounded up to a step
    import torch

    from tvm_sched.solvers.gaus.formulations import make_formulation

    form = make_formulation(g, obj, device="cpu", dtype=torch.float64, max_steps=400,
                            horizon=None)
    assert np.allclose(form.dur_steps * form.q, dur, rtol=1e-12)
    assert form.horizon <= 400 + 2
    # the same graph in microseconds instead of seconds gives the same schedule
    scaled = GauSSolver(**FAST).solve(g.replace(duration=dur * 1e6), obj, seed=0)
    assert scaled.value == pytest.approx(res.value * 1e6, rel=1e-9)

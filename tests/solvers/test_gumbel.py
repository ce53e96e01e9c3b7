"""The Gumbel-softmax stage scheduler (ICML'24 baseline)."""

from __future__ import annotations

import pytest

from tvm_sched.cost import Makespan, PeakMemory, Pipeline, StageCost
from tvm_sched.solvers import get_solver
from tvm_sched.solvers.gumbel import GumbelSolver
from tvm_sched.testing.brute import brute_stage
from tvm_sched.testing.dags import random_dag

FAST = dict(samples=8, steps=40, rounds=2)


def test_stage_schedules_are_legal_and_bounded_by_brute_force():
    for seed in range(3):
        g = random_dag(6, 0.35, seed=seed, int_durations=True)
        obj = StageCost(stages=3, ratio=2.0)
        res = GumbelSolver(**FAST).solve(g, obj, seed=seed)
        res.best.validate(g, latency=0.0)
        assert res.value >= brute_stage(g, num_stages=3, ratio=2.0)
        assert res.value <= res.info["init_value"]


def test_same_seed_same_schedule_and_zero_budget():
    g = random_dag(30, 0.1, seed=1)
    obj = StageCost(stages=4, ratio=1.0)
    a = GumbelSolver(**FAST).solve(g, obj, seed=3)
    assert a.schedules == GumbelSolver(**FAST).solve(g, obj, seed=3).schedules
    z = get_solver("gumbel").solve(g, obj, budget=0.0)
    assert z.info["rounds"] == 0 and obj.evaluate(g, z.best) == z.value


def test_order_objectives_and_unsupported():
    g = random_dag(15, 0.2, seed=2)
    for obj in (Makespan(lanes=2), PeakMemory()):
        res = GumbelSolver(**FAST).solve(g, obj)
        assert obj.evaluate(g, res.best) == res.value
    with pytest.raises(ValueError, match="does not handle"):
        GumbelSolver().solve(g, Pipeline(ii=100))

"""The pipelined (modulo) evaluator and the ``pipeline`` objective."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sched.cost import Pipeline, make_objective
from tvm_sched.cost.pipeline import (
    check_pipeline,
    modulo_list_schedule,
    modulo_usage,
    recurrence_bound,
    resource_bound,
)
from tvm_sched.errors import InfeasibleError, InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule


def chain3() -> OpGraph:
    return OpGraph(3, [(0, 1), (1, 2)], duration=[1, 2, 1])


def test_bounds():
    g = chain3()
    assert resource_bound(g, 1) == 4 and resource_bound(g, 2) == 2
    assert recurrence_bound(g, []) == 1
    assert recurrence_bound(g, [(2, 0, 1)]) == 4  # cycle of 4 steps, distance 1
    assert recurrence_bound(g, [(2, 0, 2)]) == 2
    assert recurrence_bound(g, [(1, 1, 1)]) == 2  # self recurrence: dur / distance


def test_modulo_usage_wraps_long_nodes():
    g = OpGraph(2, [], duration=[3, 1])
    assert modulo_usage(g, np.array([0, 0]), 2).tolist() == [3, 1]


def test_check_pipeline_names_each_violation():
    g = chain3()
    with pytest.raises(InvalidScheduleError, match="edge 0 -> 1"):
        check_pipeline(g, np.array([0, 0, 3]), ii=4, lanes=1, recurrences=[])
    with pytest.raises(InvalidScheduleError, match="recurrence edge"):
        check_pipeline(g, np.array([0, 1, 3]), ii=3, lanes=1, recurrences=[(2, 0, 1)])
    with pytest.raises(InvalidScheduleError, match="modulo slot"):
        check_pipeline(g, np.array([0, 1, 3]), ii=2, lanes=1, recurrences=[])
    assert check_pipeline(g, np.array([0, 1, 3]), ii=2, lanes=2, recurrences=[]).tolist() == [
        0, 1, 3]


def test_objective_value_and_completion():
    g = chain3()
    obj = make_objective("pipeline", ii=4, lanes=1, recurrences=[(2, 0, 1)])
    assert isinstance(obj, Pipeline)
    assert obj.evaluate(g, Schedule(order=(0, 1, 2))) == 4.0
    assert obj.evaluate(g, Schedule(order=(0, 1, 2), start=(0, 1, 3))) == 4.0
    assert obj.lower_bound(g) == 4.0
    assert obj.to_dict()["recurrences"] == [[2, 0, 1]]
    with pytest.raises(InvalidScheduleError):
        obj.evaluate(g, Schedule(order=(0, 1, 2), start=(0, 2, 4)))


def test_infeasible_ii_names_the_bound():
    g = chain3()
    with pytest.raises(InfeasibleError, match="resource bound"):
        Pipeline(ii=3, lanes=1).check_feasible(g)
    with pytest.raises(InfeasibleError, match="recurrence bound 4"):
        Pipeline(ii=3, lanes=2, recurrences=((2, 0, 1),)).check_feasible(g)


def test_modulo_list_schedule_is_legal_on_random_graphs():
    from tvm_sched.testing.dags import random_dag

    for seed in range(5):
        g = random_dag(10, 0.3, seed=seed, int_durations=True)
        rec = [(int(g.topological_order[-1]), int(g.topological_order[0]), 2)]
        ii = max(resource_bound(g, 2), recurrence_bound(g, rec))
        s = modulo_list_schedule(g, g.topological_order, ii=ii + 6, lanes=2, recurrences=rec)
        assert s is not None
        check_pipeline(g, s, ii=ii + 6, lanes=2, recurrences=rec)


def test_bad_parameters():
    with pytest.raises(ValueError):
        Pipeline(ii=0)
    with pytest.raises(ValueError):
        Pipeline(ii=2, recurrences=((0, 1),))
    with pytest.raises(ValueError, match="integer durations"):
        resource_bound(OpGraph(1, [], duration=[1.5]), 1)

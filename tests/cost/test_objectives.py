"""Objectives: evaluate == evaluate_orders, completed schedules validate, bounds, factory errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.cost import (
    OBJECTIVES,
    Comm,
    Makespan,
    Objective,
    PeakMemory,
    StageCost,
    make_objective,
)
from tvm_sched.cost.makespan import makespan_chain
from tvm_sched.cost.stage import stages_from_order
from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.testing.brute import (
    brute_makespan,
    brute_peak_memory,
    brute_stage,
    topological_orders,
)
from tvm_sched.testing.dags import canonical_dags, diamond, random_dag
from tvm_sched.testing.strategies import dag_and_order, dags, random_order

OBJS = st.sampled_from([
    Makespan(lanes=1),
    Makespan(lanes=2),
    Makespan(lanes=3, comm=Comm(a=1 / 256, b=0.5)),
    PeakMemory(),
    StageCost(stages=1),
    StageCost(stages=3, ratio=2.0),
    StageCost(stages=2, ratio=1.0, weight="duration"),
])


def _validate_completed(obj: Objective, g: OpGraph, sched: Schedule) -> None:
    if isinstance(obj, StageCost):
        sched.validate(g, latency=0)
    else:
        sched.validate(g, lanes=obj.lanes)


def ref_makespan(g: OpGraph, start) -> float:
    return max((s + d for s, d in zip(start, g.duration.tolist(), strict=True)), default=0.0)


# ---------------------------------------------------------------------------- consistency
@given(dag_and_order(max_nodes=10), OBJS)
def test_evaluate_equals_evaluate_orders(go, obj):
    g, order = go
    value = obj.evaluate(g, Schedule(order=order))
    batch = obj.evaluate_orders(g, order[None])
    assert batch.shape == (1,)
    assert value == pytest.approx(float(batch[0]), rel=1e-12, abs=1e-12)
    assert obj.evaluate_orders(g, order).shape == (1,)  # a single order is accepted as is


@given(dag_and_order(max_nodes=10), OBJS)
def test_complete_gives_a_valid_schedule_with_the_same_value(go, obj):
    g, order = go
    sched = obj.complete(g, Schedule(order=order, info={"solver": "test"}))
    assert sched.start is not None and len(sched.start) == g.num_nodes
    assert sched.info == {"solver": "test"}
    _validate_completed(obj, g, sched)
    assert obj.value(g, sched) == pytest.approx(obj.evaluate(g, Schedule(order=order)),
                                                rel=1e-12, abs=1e-12)
    # completing a completed schedule changes nothing
    again = obj.complete(g, sched)
    assert again.start == sched.start and again.lane == sched.lane
    assert obj.value(g, again) == obj.value(g, sched)


@given(dag_and_order(max_nodes=10), st.integers(1, 3), st.randoms(use_true_random=False))
def test_makespan_with_given_lanes_uses_chain_semantics(go, m, rnd):
    g, order = go
    lane = [rnd.randrange(m) for _ in range(g.num_nodes)]
    obj = Makespan(lanes=m)
    sched = obj.complete(g, Schedule(order=order, lane=lane))
    assert list(sched.lane) == lane
    sched.validate(g, lanes=m)
    assert obj.evaluate(g, Schedule(order=order, lane=lane)) == makespan_chain(
        g, order, np.array(lane, dtype=np.int64))
    assert obj.evaluate(g, Schedule(order=order, lane=lane)) == ref_makespan(g, sched.start)


def test_makespan_rejects_a_lane_beyond_its_lanes():
    g = diamond()
    with pytest.raises(InvalidScheduleError, match="node 1 is on lane 2"):
        Makespan(lanes=2).evaluate(g, Schedule(order=(0, 1, 2, 3), lane=(0, 2, 1, 0)))


def test_evaluate_validates_the_order():
    g = diamond()
    for obj in (Makespan(lanes=2), PeakMemory(), StageCost(stages=2)):
        with pytest.raises(InvalidScheduleError, match=r"edge 0 -> 1"):
            obj.evaluate(g, Schedule(order=(1, 0, 2, 3)))


@given(dag_and_order(max_nodes=9), st.integers(1, 4), st.randoms(use_true_random=False))
def test_stage_objective_with_explicit_stages(go, num_stages, rnd):
    g, order = go
    obj = StageCost(stages=num_stages, ratio=3.0)
    # stages nondecreasing along the order, with random jumps
    s = [0] * g.num_nodes
    cur = 0
    for v in order.tolist():
        cur = min(num_stages - 1, cur + rnd.randrange(2))
        s[v] = cur
    sched = obj.complete(g, Schedule(order=order, start=s))
    sched.validate(g, latency=0)
    assert list(sched.start) == s
    pos = sched.position()
    assert all(s[a] <= s[b] for a, b in zip(sched.order, sched.order[1:], strict=False))
    assert len(pos) == g.num_nodes
    load = [0.0] * num_stages
    for v in range(g.num_nodes):
        load[s[v]] += float(g.out_bytes[v])
    cross = sum(s[v] - s[u] for (u, v), b in zip(g.edges, g.edge_bytes.tolist(), strict=True)
                if b > 0)
    assert obj.evaluate(g, Schedule(order=order, start=s)) == 3.0 * max(load) + cross


def test_peak_memory_completion_runs_the_order_serially():
    g = diamond()  # durations 1, 3.5, 2.5, 1.5
    sched = PeakMemory().complete(g, Schedule(order=(0, 2, 1, 3)))
    assert sched.start == (0.0, 3.5, 1.0, 7.0) and sched.lane is None
    sched.validate(g, lanes=1)
    assert PeakMemory().evaluate(g, sched) == PeakMemory().evaluate(g, Schedule(order=(0, 2, 1, 3)))


def test_stage_value_needs_start():
    with pytest.raises(InvalidScheduleError, match="needs start"):
        StageCost(stages=2).value(diamond(), Schedule(order=(0, 1, 2, 3)))


def test_stage_complete_from_order_uses_the_min_max_split():
    g = diamond()
    order = np.array([0, 2, 1, 3])
    sched = StageCost(stages=2).complete(g, Schedule(order=order))
    expect = stages_from_order(g, order, num_stages=2)
    assert list(sched.start) == expect.astype(float).tolist()


# ---------------------------------------------------------------------------- bounds
@settings(max_examples=20)
@given(dags(min_nodes=1, max_nodes=6), st.integers(1, 3))
def test_lower_bounds_below_brute_force_optima(g, m):
    mk = Makespan(lanes=m)
    opt = brute_makespan(g, m)
    assert mk.lower_bound(g) <= opt + 1e-9
    orders = np.array(list(topological_orders(g)), dtype=np.int64)
    assert opt == float(mk.evaluate_orders(g, orders).min())
    pm = PeakMemory()
    assert pm.lower_bound(g) <= brute_peak_memory(g)
    sc = StageCost(stages=m + 1, ratio=1.5)
    assert sc.lower_bound(g) <= brute_stage(g, num_stages=m + 1, ratio=1.5) + 1e-9
    # order-based values never beat the optimum over all stage vectors
    assert sc.evaluate_orders(g, orders).min() >= brute_stage(g, num_stages=m + 1,
                                                              ratio=1.5) - 1e-9


def test_lower_bounds_on_canonical_dags():
    for g in canonical_dags().values():
        order = g.topological_order[None]
        for obj in (Makespan(lanes=1), Makespan(lanes=4), PeakMemory(), StageCost(stages=3)):
            assert obj.lower_bound(g) <= obj.evaluate_orders(g, order)[0] + 1e-9


def test_makespan_lower_bound_formula():
    g = diamond()  # durations 1, 3.5, 2.5, 1.5: critical path 6, total 8.5
    assert Makespan(lanes=1).lower_bound(g) == 8.5
    assert Makespan(lanes=2).lower_bound(g) == 6.0


# ---------------------------------------------------------------------------- batch, scale
def test_thousand_orders_of_a_hundred_nodes():
    g = random_dag(100, 0.05, seed=11)
    rnd = random.Random(11)
    orders = np.stack([random_order(g, rnd) for _ in range(1000)])
    for obj in (Makespan(lanes=4), Makespan(lanes=2, comm=Comm(a=1e-4, b=0.1)), PeakMemory(),
                StageCost(stages=8)):
        values = obj.evaluate_orders(g, orders)
        assert values.shape == (1000,)
        assert np.all(np.isfinite(values))
        assert np.all(values >= obj.lower_bound(g) - 1e-9)
        # spot-check against the scalar path
        for b in (0, 499, 999):
            assert obj.evaluate(g, Schedule(order=orders[b])) == pytest.approx(values[b])


def test_empty_batch_and_empty_graph():
    g = diamond()
    empty = np.zeros((0, 4), dtype=np.int64)
    for obj in (Makespan(lanes=2), PeakMemory(), StageCost(stages=2)):
        assert obj.evaluate_orders(g, empty).shape == (0,)
    e = OpGraph(0)
    for obj in (Makespan(lanes=2), PeakMemory(), StageCost(stages=2)):
        assert obj.evaluate_orders(e, np.zeros((2, 0), dtype=np.int64)).tolist() == [0.0, 0.0]
        assert obj.evaluate(e, Schedule(order=())) == 0.0
        assert obj.lower_bound(e) == 0.0


# ---------------------------------------------------------------------------- factory
def test_make_objective_builds_each_kind():
    assert OBJECTIVES == ("makespan", "peak_memory", "planned_memory", "arena_memory", "stage",
                          "pipeline")
    mk = make_objective("makespan", lanes=4, comm=(0.001, 0.5))
    assert mk == Makespan(lanes=4, comm=Comm(0.001, 0.5))
    assert mk.lanes == 4 and mk.describe() == "makespan (4 lanes, comm a=0.001 b=0.5)"
    assert mk.to_dict() == {"name": "makespan", "lanes": 4, "comm": {"a": 0.001, "b": 0.5}}
    assert make_objective("makespan", lanes=2, comm=Comm()).comm is None  # zero comm is none
    assert make_objective("makespan", lanes=None) == Makespan(lanes=1)
    assert make_objective("peak_memory") == PeakMemory()
    assert make_objective("peak_memory", lanes=1).lanes == 1
    st_obj = make_objective("stage", stages=4, ratio=2.0, weight="duration", lanes=3)
    assert st_obj == StageCost(stages=4, ratio=2.0, weight="duration")
    assert st_obj.to_dict() == {"name": "stage", "stages": 4, "ratio": 2.0, "weight": "duration"}
    assert make_objective(st_obj) is st_obj
    assert make_objective("makespan").describe() == "makespan (1 lanes)"


@pytest.mark.parametrize(
    ("name", "kw", "pattern"),
    [
        ("latency", {}, r"unknown objective 'latency'; choose one of makespan, peak_memory, "
                        r"planned_memory, arena_memory, stage, pipeline"),
        ("peak_memory", {"lanes": 2}, r"peak_memory is defined for one lane .*lanes=2"),
        ("makespan", {"lanes": 0}, r"lanes must be a positive integer, got 0"),
        ("makespan", {"lanes": 1.5}, r"lanes must be a positive integer, got 1.5"),
        ("makespan", {"lanes": "2"}, r"lanes must be a positive integer"),
        ("makespan", {"weight": "flops"}, r"makespan does not take \['weight'\]"),
        ("peak_memory", {"stages": 3}, r"peak_memory does not take \['stages'\]"),
        ("stage", {"stages": 0}, r"stages must be a positive integer, got 0"),
        ("stage", {"ratio": -1.0}, r"ratio must be >= 0"),
        ("stage", {"weight": "bytes"}, r"unknown stage weight 'bytes'"),
        ("stage", {"lane": 2}, r"stage does not take \['lane'\]"),
        ("makespan", {"comm": (-1.0, 0.0)}, r"communication cost must be >= 0"),
    ],
)
def test_make_objective_errors(name, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_objective(name, **kw)

"""Lane modules on zoo models: bit-identical to the Relax VM, arena safe under concurrency."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

#: Zoo models (small size) the bit-identity tests run on.
MODELS = ("inception", "nasnet", "transformer")


def _engines():
    kinds = ["python"]
    try:
        from tvm_sched.runtime import native_engine as native

        if native.available():
            kinds.append("native")
    except ImportError:
        pass
    return kinds


def _same(outs, ref):
    assert len(outs) == len(ref)
    for a, b in zip(outs, ref, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", MODELS)
def test_one_lane_matches_the_vm_and_fits_tvms_bytes(compiled, name):
    kernels, inputs, ref = compiled(name)
    with kernels.module(engine="python") as lm:
        _same(lm(*inputs), ref)
        assert lm.plan.num_lanes == 1 and lm.plan.num_waits == 0
        assert lm.arena_bytes <= kernels.tvm_planned_bytes
        assert lm.plan.meta["tvm_planned_bytes"] == kernels.tvm_planned_bytes


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(lanes=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_random_lane_schedules_are_bit_identical(compiled, random_schedule, name, lanes, seed):
    kernels, inputs, ref = compiled(name)
    sched = random_schedule(kernels.graph, lanes, np.random.default_rng(seed))
    for engine in _engines():
        with kernels.module(sched, engine=engine, allow_oversubscribe=True) as lm:
            lm.poison()
            _same(lm(*inputs), ref)
            lm.poison()
            _same(lm(*inputs), ref)


def _check_arena_safe(plan):
    """Overlapping arena tensors: every use of one happens before every write of the other (a
    zero-copy concatenation is written by the producers of its slices, views into it)."""
    hb = plan.happens_before()
    base = {i: (t.index if t.kind == "view" else i) for i, t in enumerate(plan.tensors)}
    uses: dict[int, set[int]] = {}
    writers: dict[int, set[int]] = {}
    for s, step in enumerate(plan.steps):
        for a in step.args:
            uses.setdefault(base[a], set()).add(s)
        for a in step.args[len(step.args) - step.num_outputs:]:
            writers.setdefault(base[a], set()).add(s)
    arena = [i for i, t in enumerate(plan.tensors) if t.kind == "arena"]
    for x in arena:
        for y in arena:
            tx, ty = plan.tensors[x], plan.tensors[y]
            if x >= y or tx.offset + tx.nbytes <= ty.offset or ty.offset + ty.nbytes <= tx.offset:
                continue
            x_first = all(hb[u, w] for u in uses[x] for w in writers[y])
            y_first = all(hb[u, w] for u in uses[y] for w in writers[x])
            assert x_first or y_first, f"tensors {x} and {y} share bytes and may be live together"


@pytest.mark.parametrize("name", MODELS)
def test_arena_reuse_is_safe_under_the_plans_happens_before(compiled, random_schedule, name):
    kernels, _, _ = compiled(name)
    rng = np.random.default_rng(7)
    for lanes in (1, 2, 3):
        plan = kernels.plan(random_schedule(kernels.graph, lanes, rng))
        _check_arena_safe(plan)
    plan = kernels.plan(None)
    _check_arena_safe(plan)


def test_race_stress_on_a_poisoned_arena(compiled, random_schedule):
    """Hundreds of runs with random schedules, the arena filled with NaN bytes before each."""
    kernels, inputs, ref = compiled("nasnet")
    rng = np.random.default_rng(2024)
    runs = 0
    for _ in range(8):
        sched = random_schedule(kernels.graph, int(rng.integers(2, 5)), rng)
        for engine in _engines():
            with kernels.module(sched, engine=engine, allow_oversubscribe=True) as lm:
                lm.set_inputs(*inputs)
                for _ in range(15):
                    lm.poison(0xFF)
                    lm.run()
                    _same(lm.outputs(), ref)
                    runs += 1
    assert runs >= 120


def test_build_with_a_solver_profiles_and_predicts(compiled):
    from tvm_sched import runtime
    from tvm_sched.tune import load_model

    model = load_model(model="inception")
    _, inputs, ref = compiled("inception")
    with runtime.build(model.mod, lanes=2, solver="list", params=model.params,
                       engine="python", allow_oversubscribe=True, budget=1.0) as lm:
        _same(lm(*inputs), ref)
        meta = lm.plan.meta
        assert lm.plan.num_lanes == 2
        assert meta["solver"] == "list"
        assert 0 < meta["predicted_makespan_s"] <= meta["sum_durations_s"]
        assert lm.time(number=2, repeat=2) > 0

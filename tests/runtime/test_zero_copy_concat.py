"""Zero-copy concatenation in the lane runtime: the concatenate kernels vanish, the outputs stay
bit-identical to the copying plan and to the Relax VM on 1 and 2 lanes, the arena is never larger
than the copying plan's, and the plan's safety proof (``LanePlan.validate``) covers slices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvm_sched.errors import InvalidScheduleError

pytestmark = pytest.mark.integration


def _fused(name: str):
    """A zoo model (small) fused after BatchNorm is decomposed (the deployed configuration, in
    which the concatenates are kernels of their own)."""
    from tvm import relax

    from tvm_sched import zoo
    from tvm_sched.relax.passes import fusion_prefix

    imp = zoo.load(name, size="small")
    mod = relax.transform.LiftTransformParams()(imp.mod)
    mod = relax.transform.CanonicalizeBindings()(relax.transform.DecomposeOpsForInference()(mod))
    return fusion_prefix()(mod), imp


@pytest.fixture(scope="module")
def compiled():
    from tvm_sched.runtime.builder import LaneKernels

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            mod, imp = _fused(name)
            kernels = LaneKernels(mod, "llvm", params=imp.params)
            cache[name] = (kernels, imp.inputs, kernels.reference(*imp.inputs))
        return cache[name]

    return get


def _same(outs, ref):
    assert len(outs) == len(ref)
    for a, b in zip(outs, ref, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True)


def _engines():
    kinds = ["python"]
    try:
        from tvm_sched.runtime import native_engine as native

        if native.available():
            kinds.append("native")
    except ImportError:
        pass
    return kinds


def _concat_kernels(kernels) -> set[str]:
    from tvm_sched.relax.concat import concat_layout

    return {gv.name_hint for gv, f in kernels.mod.functions.items()
            if concat_layout(f) is not None}


def _plans(kernels, schedule):
    from tvm_sched.runtime.lower import plan_module

    copy = plan_module(kernels.mod, schedule, graph=kernels.graph, zero_copy_concat=False)
    zero = plan_module(kernels.mod, schedule, graph=kernels.graph)
    return copy, zero


def _check(kernels, inputs, ref, schedule, *, removed_at_least: int = 0):
    copy, zero = _plans(kernels, schedule)
    info = zero.meta.get("zero_copy_concat", {})
    assert zero.arena_bytes <= copy.arena_bytes
    assert info.get("removed", 0) >= removed_at_least
    assert len(zero.steps) == len(copy.steps) - info.get("removed", 0)
    if info.get("removed"):
        gone = _concat_kernels(kernels)
        kept = {zero.kernels[st.kernel] for st in zero.steps}
        assert len(gone & {copy.kernels[st.kernel] for st in copy.steps}) >= 1
        assert sum(1 for st in zero.steps if zero.kernels[st.kernel] in gone) == \
            sum(1 for st in copy.steps if copy.kernels[st.kernel] in gone) - info["removed"]
        assert kept <= set(zero.kernels)
    for plan in (copy, zero):
        for engine in _engines():
            with kernels.module(plan, engine=engine, allow_oversubscribe=True) as lm:
                lm.poison()
                _same(lm(*inputs), ref)
                lm.poison()
                _same(lm(*inputs), ref)
    return copy, zero


def test_nasnet_concatenates_vanish_one_lane(compiled):
    # nasnet, not darts: with darts' pre-activation ReLUs inside their consumers, removing
    # its concatenates would grow the arena, and the planner rightly keeps them copying
    kernels, inputs, ref = compiled("nasnet")
    copy, zero = _check(kernels, inputs, ref, None, removed_at_least=2)
    assert not {zero.kernels[st.kernel] for st in zero.steps} & _concat_kernels(kernels)
    assert set(zero.kernels) == {zero.kernels[st.kernel] for st in zero.steps}
    slices = [t for t in zero.tensors if t.kind == "view" and t.offset >= 0]
    assert len(slices) >= 4  # at least two inputs per concatenate
    from tvm_sched.runtime.plan import LanePlan

    back = LanePlan.from_json(zero.to_json())  # format 2: views with an offset
    assert back.tensors == zero.tensors and back.steps == zero.steps


def test_nasnet_two_lanes_list_schedule(compiled):
    kernels, inputs, ref = compiled("nasnet")
    _check(kernels, inputs, ref, kernels.schedule(2, "list", budget=1.0), removed_at_least=1)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(lanes=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_random_lane_schedules_never_overwrite_a_live_tensor(compiled, random_schedule, lanes,
                                                             seed):
    kernels, inputs, ref = compiled("darts")
    sched = random_schedule(kernels.graph, lanes, np.random.default_rng(seed))
    _check(kernels, inputs, ref, sched)


def test_copying_plan_when_turned_off(compiled):
    kernels, _, _ = compiled("darts")
    copy, _ = _plans(kernels, None)
    assert "zero_copy_concat" not in copy.meta
    assert not any(t.kind == "view" and t.offset >= 0 for t in copy.tensors)


def test_validate_refuses_unsafe_slices(compiled):
    kernels, _, _ = compiled("nasnet")
    _, zero = _plans(kernels, None)
    slices = [i for i, t in enumerate(zero.tensors) if t.kind == "view" and t.offset >= 0]
    a, b = slices[0], slices[1]
    tensors = list(zero.tensors)
    # two slices on the same bytes
    tensors[b] = replace(tensors[b], offset=tensors[a].offset)
    with pytest.raises(InvalidScheduleError, match="overlapping bytes|unwritten"):
        replace(zero, tensors=tuple(tensors)).validate()
    # a slice off its 64-byte grid, or of a tensor outside the arena
    tensors = list(zero.tensors)
    tensors[b] = replace(tensors[b], offset=tensors[b].offset + 4)
    with pytest.raises(InvalidScheduleError, match="aligned slice"):
        replace(zero, tensors=tuple(tensors)).validate()
    # a reader of the concatenation that no longer waits for one slice's producer
    base = zero.tensors[a].index
    writer = next(k for k, st in enumerate(zero.steps) if a in st.outputs)
    reader = next(k for k, st in enumerate(zero.steps) if base in st.inputs)
    lanes = [list(c) for c in zero.lanes]
    for c in lanes:
        if writer in c:
            c.remove(writer)
    lanes.append([writer])
    waits = [tuple(w for w in ws if w != writer) for ws in zero.waits]
    bad = replace(zero, lanes=tuple(tuple(c) for c in lanes), waits=tuple(waits))
    with pytest.raises(InvalidScheduleError, match=f"step {reader}|without waiting"):
        bad.validate()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nasnet", "googlenet", "inception"])
def test_zoo_models_one_and_two_lanes(compiled, name):
    kernels, inputs, ref = compiled(name)
    _, zero = _check(kernels, inputs, ref, None)
    _check(kernels, inputs, ref, kernels.schedule(2, "list", budget=1.0))
    if name in ("nasnet", "googlenet"):
        assert zero.meta["zero_copy_concat"]["removed"] >= 1

"""LanePlan: JSON round trip, validation errors, happens-before (no TVM)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tvm_sched.errors import CycleError, InvalidScheduleError
from tvm_sched.runtime.plan import FORMAT_VERSION, LanePlan, Step, TensorSpec
from tvm_sched.testing.plans import unordered_overlaps
from tvm_sched.testing.strategies import lane_plans


def _plan(**kw) -> LanePlan:
    tensors = (
        TensorSpec("param", (4,), "float32", index=0),
        TensorSpec("arena", (4,), "float32", offset=0, node=0),
        TensorSpec("arena", (4,), "float32", offset=64, node=1),
        TensorSpec("extern", (4,), "float32", node=2),
        TensorSpec("view", (2, 2), "float32", index=3, node=3),
    )
    steps = (Step(0, "a", 0, (0, 1)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 2, 3)))
    d = dict(kernels=("k0", "k1"), tensors=tensors, steps=steps, lanes=((0, 2), (1,)),
             waits=((), (), (1,)), outputs=(4,), num_input=1, num_params=1, arena_bytes=128,
             threads_per_lane=1, num_nodes=4, meta={"model": "toy"})
    d.update(kw)
    return LanePlan(**d)


def test_json_round_trip():
    plan = _plan()
    plan.validate()
    back = LanePlan.from_json(plan.to_json())
    assert back == plan
    assert back.meta == {"model": "toy"}
    assert back.steps[2].inputs == (1, 2) and back.steps[2].outputs == (3,)
    assert json.loads(plan.to_json())["version"] == FORMAT_VERSION


def test_happens_before_is_closure_of_lanes_and_waits():
    hb = _plan().happens_before()
    assert hb.tolist() == [[False, False, True], [False, False, True], [False, False, False]]
    assert _plan(waits=((), (), ())).happens_before()[1, 2] == np.False_


def test_other_format_version_is_refused():
    d = _plan().to_dict()
    d["version"] = FORMAT_VERSION + 1
    with pytest.raises(InvalidScheduleError, match="version"):
        LanePlan.from_dict(d)
    with pytest.raises(InvalidScheduleError, match="not a lane plan"):
        LanePlan.from_dict({"kernels": []})
    with pytest.raises(InvalidScheduleError, match="not valid JSON"):
        LanePlan.from_json("{")
    d = _plan().to_dict()
    del d["steps"]
    with pytest.raises(InvalidScheduleError, match="malformed"):
        LanePlan.from_dict(d)


@pytest.mark.parametrize("change, match", [
    (dict(lanes=((0, 2), (1, 2))), "on lane 0 and on lane 1"),
    (dict(lanes=((0,), (1,))), "step 2 .* is on no lane"),
    (dict(waits=((), (), (0,))), "on its own lane"),
    (dict(waits=((), (), (7,))), "waits for step 7"),
    (dict(steps=(Step(0, "a", 5, (0, 1)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 2, 3)))),
     "calls kernel 5"),
    (dict(steps=(Step(0, "a", 0, (0, 9)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 2, 3)))),
     "reads tensor 9"),
    (dict(arena_bytes=100), "multiple of 64"),
    (dict(arena_bytes=64), "inside the 64-byte arena"),
    (dict(outputs=(12,)), "output tensor 12"),
    (dict(threads_per_lane=0), "threads_per_lane"),
])
def test_invalid_plans_are_named(change, match):
    with pytest.raises(InvalidScheduleError, match=match):
        _plan(**change).validate()


def test_cycle_through_lanes_and_waits_is_named():
    plan = _plan(waits=((), (2,), (1,)))  # 1 waits for 2 and 2 for 1
    with pytest.raises(CycleError, match="cycle") as info:
        plan.validate()
    assert set(info.value.cycle) == {1, 2}
    with pytest.raises(CycleError):
        LanePlan.from_json(plan.to_json())


def test_misaligned_arena_tensor():
    tensors = list(_plan().tensors)
    tensors[2] = TensorSpec("arena", (4,), "float32", offset=32, node=1)
    with pytest.raises(InvalidScheduleError, match="aligned"):
        _plan(tensors=tuple(tensors)).validate()


# -- issue 20: validation proves a plan safe -----------------------------------------------------

def _with_tensor(k: int, spec: TensorSpec, **kw) -> LanePlan:
    tensors = list(_plan().tensors)
    tensors[k] = spec
    return _plan(tensors=tuple(tensors), **kw)


def test_duplicate_param_and_const_indices_are_refused():
    extra = TensorSpec("param", (4,), "float32", index=0)
    steps = (Step(0, "a", 0, (5, 1)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 2, 3)))
    plan = _plan(tensors=_plan().tensors + (extra,), steps=steps)
    with pytest.raises(InvalidScheduleError, match="tensors 0 and 5 are both parameter 0"):
        plan.validate()
    consts = (TensorSpec("const", (4,), "float32", index=0),) * 2
    steps = (Step(0, "a", 0, (5, 1)), Step(1, "b", 1, (6, 2)), Step(2, "c", 0, (1, 2, 3)))
    plan = _plan(tensors=_plan().tensors + consts, steps=steps)
    with pytest.raises(InvalidScheduleError, match="tensors 5 and 6 are both constant 0"):
        plan.validate(num_consts=1)


def test_constant_indices_must_be_in_range():
    steps = (Step(0, "a", 0, (5, 1)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 2, 3)))
    for index, num_consts, match in [(-1, None, "constant -1"), (-1, 3, "constant -1"),
                                     (2, 2, "constant 2; the module has 2 constants")]:
        const = TensorSpec("const", (4,), "float32", index=index)
        plan = _plan(tensors=_plan().tensors + (const,), steps=steps)
        with pytest.raises(InvalidScheduleError, match=match):
            plan.validate(num_consts=num_consts)
    const = TensorSpec("const", (4,), "float32", index=1)
    _plan(tensors=_plan().tensors + (const,), steps=steps).validate(num_consts=2)


def test_overlapping_live_arena_tensors_are_refused():
    # steps a (lane 0) and b (lane 1) run concurrently and write tensors 1 and 2
    plan = _with_tensor(2, TensorSpec("arena", (4,), "float32", offset=0, node=1))
    with pytest.raises(InvalidScheduleError,
                       match=r"arena tensors 1 and 2 share bytes \[0, 16\).*step 0 \(a\)"):
        plan.validate()


def test_reuse_after_every_use_is_accepted_and_interleaving_refused():
    # one lane: a writes 1, b reads 1 and writes 2, c reads 2 and writes 3 (reuses 1's bytes)
    tensors = (TensorSpec("param", (16,), "float32", index=0),
               TensorSpec("arena", (16,), "float32", offset=0, node=0),
               TensorSpec("arena", (16,), "float32", offset=64, node=1),
               TensorSpec("arena", (16,), "float32", offset=0, node=2),
               TensorSpec("extern", (16,), "float32", node=3))
    steps = (Step(0, "a", 0, (0, 1)), Step(1, "b", 0, (1, 2)), Step(2, "c", 0, (2, 3)),
             Step(3, "d", 0, (3, 4)))
    ok = _plan(tensors=tensors, steps=steps, lanes=((0, 1, 2, 3),), waits=((),) * 4,
               outputs=(4,), arena_bytes=128, kernels=("k0",))
    ok.validate()
    # c writes 1's bytes while 1 is still read later (by d): the uses interleave
    late = steps[:3] + (Step(3, "d", 0, (1, 3, 4)),)
    with pytest.raises(InvalidScheduleError, match="arena tensors 1 and 3"):
        replace(ok, steps=late).validate()
    # a view of tensor 1 read by d counts as tensor 1
    view = tensors + (TensorSpec("view", (4, 4), "float32", index=1),)
    late = steps[:3] + (Step(3, "d", 0, (5, 3, 4)),)
    with pytest.raises(InvalidScheduleError, match="arena tensors 1 and 3"):
        replace(ok, tensors=view, steps=late).validate()
    # a returned arena tensor is read after every step: nothing may reuse its bytes
    with pytest.raises(InvalidScheduleError, match="plan's outputs uses tensor 1"):
        replace(ok, outputs=(4, 1)).validate()


def test_inflated_arena_is_refused():
    _plan(arena_bytes=128).validate()  # 2 arena tensors of 16 bytes: 2 x 64 stacked
    with pytest.raises(InvalidScheduleError, match="more than its arena tensors need"):
        _plan(arena_bytes=192).validate()
    with pytest.raises(InvalidScheduleError, match="more than its arena tensors need"):
        _plan(arena_bytes=10 << 30).validate()


@pytest.mark.parametrize("change, match", [
    (dict(waits=((), (), ())), r"step 2 \(c\) reads tensor 2, which step 1 \(b\) writes, "
                               "without waiting"),
    (dict(steps=(Step(0, "a", 0, (1, 0)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 2, 3)))),
     "writes tensor 0, a param"),
    (dict(steps=(Step(0, "a", 0, (0, 1)), Step(1, "b", 1, (0, 1)), Step(2, "c", 0, (1, 2, 3)))),
     "tensor 1 .* written by steps 0 .* and 1"),
    (dict(outputs=(4, 2), steps=(Step(0, "a", 0, (0, 1)), Step(1, "b", 1, (0, 3)),
                                 Step(2, "c", 0, (1, 3, 4)))), "more than|no step writes"),
    (dict(num_input=2), "num_input 2"),
])
def test_unsafe_dataflow_is_refused(change, match):
    with pytest.raises(InvalidScheduleError, match=match):
        _plan(**change).validate()


def test_extern_read_or_returned_but_never_written_is_refused():
    tensors = _plan().tensors + (TensorSpec("extern", (4,), "float32", node=2),)
    steps = (Step(0, "a", 0, (0, 1)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 2, 5)))
    _plan(tensors=tensors, steps=steps, outputs=(5,)).validate()
    for outputs in [(3,), (4,), (5, 4)]:  # tensor 3 (or its view 4) is returned, never written
        with pytest.raises(InvalidScheduleError, match=r"tensor 3 \(extern\) is read but no"):
            _plan(tensors=tensors, steps=steps, outputs=outputs).validate()
    read = (Step(0, "a", 0, (0, 1)), Step(1, "b", 1, (0, 2)), Step(2, "c", 0, (1, 4, 5)))
    with pytest.raises(InvalidScheduleError, match=r"tensor 3 \(extern\) is read but no"):
        _plan(tensors=tensors, steps=read, outputs=(5,)).validate()


@pytest.mark.parametrize("dtype", ["float32x", "f8", "float", "int0", "float32x0", "<f4", ""])
def test_unknown_dtypes_are_refused(dtype):
    with pytest.raises(InvalidScheduleError, match="unknown dtype"):
        _with_tensor(3, TensorSpec("extern", (4,), dtype, node=2)).validate()


def test_huge_tensors_are_refused():
    with pytest.raises(InvalidScheduleError, match="larger than"):
        _with_tensor(3, TensorSpec("extern", (1 << 30, 1 << 30), "float32", node=2)).validate()


# -- JSON: only the documented types, only InvalidScheduleError / CycleError --------------------

@pytest.mark.parametrize("path, value, match", [
    (("tensors",), {"0": {}}, "tensors is a dict, not a list"),
    (("tensors", 0), [1, 2], "tensor 0 is a list, not an object"),
    (("tensors", 0, "shape"), ["4"], r"tensor 0 shape\[0\] is '4', not an integer"),
    (("tensors", 0, "shape"), [4.0], "not an integer"),
    (("tensors", 0, "shape"), [-4], "negative dimension"),
    (("tensors", 0, "index"), 10**30, "does not fit in 64 bits"),
    (("tensors", 0, "dtype"), 7, "dtype is 7, not a string"),
    (("tensors", 0, "kind"), ["param"], "kind is .*not a string"),
    (("steps", 0), "step", "step 0 is a str"),
    (("steps", 0, "args"), {"a": 1}, "args is a dict"),
    (("steps", 0, "num_outputs"), True, "num_outputs is True, not an integer"),
    (("lanes", 0), 5, "lane 0 is a int"),
    (("waits",), None, "waits is a NoneType"),
    (("num_params",), "1", "num_params is '1'"),
    (("meta",), [1, 2], "meta is a list"),
    (("kernels", 0), None, "kernel 0 is None"),
])
def test_wrong_json_types_are_named(path, value, match):
    d = json.loads(_plan().to_json())
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidScheduleError, match=match):
        LanePlan.from_dict(d)
    with pytest.raises(InvalidScheduleError, match=match):
        LanePlan.from_json(json.dumps(d))


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "1" * 5000 + "}",
                                  b"\xff\xfe", "NaN", "", '{"format": "tvm_sched.LanePlan"}'])
def test_unreadable_json_is_an_invalid_schedule(text):
    with pytest.raises(InvalidScheduleError):
        LanePlan.from_json(text)


# -- properties: plans of the real planner path are accepted, unsafe mutations refused ----------

@settings(max_examples=80, deadline=None)
@given(lane_plans())
def test_plans_of_the_planner_are_accepted(plan):
    plan.validate()
    assert unordered_overlaps(plan) == []
    assert LanePlan.from_json(plan.to_json()) == plan


@settings(max_examples=80, deadline=None)
@given(lane_plans(), st.data())
def test_moved_arena_offsets_are_refused_exactly_when_unsafe(plan, data):
    arena = [i for i, t in enumerate(plan.tensors) if t.kind == "arena"]
    assume(arena)
    i = data.draw(st.sampled_from(arena))
    t = plan.tensors[i]
    slots = (plan.arena_bytes - t.nbytes) // 64
    offset = 64 * data.draw(st.integers(0, slots))
    tensors = list(plan.tensors)
    tensors[i] = replace(t, offset=offset)
    moved = replace(plan, tensors=tuple(tensors))
    if unordered_overlaps(moved):
        with pytest.raises(InvalidScheduleError, match="arena tensors .* share bytes"):
            moved.validate()
    else:
        moved.validate()


@settings(max_examples=40, deadline=None)
@given(lane_plans(), st.data())
def test_shifting_an_offset_onto_a_live_tensor_is_refused(plan, data):
    live = [(a, b) for a, b in unordered_overlaps(replace(plan, tensors=tuple(
        replace(t, offset=0) if t.kind == "arena" else t for t in plan.tensors)))]
    assume(live)
    a, b = data.draw(st.sampled_from(live))
    tensors = list(plan.tensors)
    tensors[b] = replace(tensors[b], offset=tensors[a].offset)
    moved = replace(plan, tensors=tuple(tensors))
    assume(moved.tensors[b].offset + moved.tensors[b].nbytes <= plan.arena_bytes)
    # the original plan is safe, so every unsafe pair now involves b
    with pytest.raises(InvalidScheduleError, match=f"arena tensors ({b} and \\d+|\\d+ and {b}) "):
        moved.validate()


@settings(max_examples=40, deadline=None)
@given(lane_plans(), st.integers(1, 1 << 20))
def test_duplicate_params_and_inflated_arenas_are_refused(plan, extra):
    dup = replace(plan, tensors=plan.tensors + (TensorSpec("param", (4,), "uint8", index=0),))
    with pytest.raises(InvalidScheduleError, match="both parameter 0"):
        dup.validate()
    stacked = sum(-(-t.nbytes // 64) * 64 for t in plan.tensors if t.kind == "arena")
    replace(plan, arena_bytes=stacked).validate()
    with pytest.raises(InvalidScheduleError, match="more than its arena tensors need"):
        replace(plan, arena_bytes=stacked + 64 * extra).validate()


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                          max_size=4),
                     max_leaves=20)


_FIELDS = st.sampled_from(["kernels", "tensors", "steps", "lanes", "waits", "outputs",
                           "num_input", "num_params", "arena_bytes", "threads_per_lane",
                           "num_nodes", "meta"])


@settings(max_examples=300, deadline=None)
@given(_JSON, st.dictionaries(_FIELDS, _JSON, min_size=1))
def test_any_json_value_is_a_plan_or_an_invalid_schedule(value, fields):
    with pytest.raises(InvalidScheduleError):
        LanePlan.from_dict(value)
    with pytest.raises(InvalidScheduleError):
        LanePlan.from_json(json.dumps(value))
    d = {**json.loads(_plan().to_json()), **fields}  # a plan header, random fields
    for read in (lambda: LanePlan.from_dict(d), lambda: LanePlan.from_json(json.dumps(d))):
        try:
            read().validate()
        except (InvalidScheduleError, CycleError):
            pass


def _paths(x, prefix=()):
    yield prefix
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(x, list):
        for k, v in enumerate(x):
            yield from _paths(v, prefix + (k,))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_field_replaced_by_any_json_value_raises_only_plan_errors(data):
    d = json.loads(_plan().to_json())
    path = data.draw(st.sampled_from(list(_paths(d))[1:]))
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(_JSON)
    try:
        plan = LanePlan.from_dict(d)
    except (InvalidScheduleError, CycleError):
        return
    plan.validate()

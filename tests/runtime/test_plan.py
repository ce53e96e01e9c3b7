"""LanePlan: JSON round trip, validation errors, happens-before (no TVM)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tvm_sched.errors import CycleError, InvalidScheduleError
from tvm_sched.runtime.plan import FORMAT_VERSION, LanePlan, Step, TensorSpec


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

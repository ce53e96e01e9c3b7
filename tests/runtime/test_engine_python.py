"""The Python lane engine on plain Python callables: ordering, errors, validation (no TVM).

The engine's lane threads try to size TVM's thread pool; without TVM they skip that, with it
they configure one thread each -- either way these tests need no kernels.
"""

from __future__ import annotations

import threading
import time

import pytest

from tvm_sched.errors import CycleError, InvalidScheduleError
from tvm_sched.runtime.cores import lane_cores
from tvm_sched.runtime.engine_python import LaneError, PythonEngine


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.events: list[tuple[str, int]] = []

    def func(self, delay: float = 0.0):
        def call(step: int):
            with self.lock:
                self.events.append(("start", step))
            if delay:
                time.sleep(delay)
            with self.lock:
                self.events.append(("end", step))
        return call

    def index(self, kind: str, step: int) -> int:
        return self.events.index((kind, step))


def test_waits_and_lane_orders_are_respected_over_many_runs():
    rec = Recorder()
    # lane 0: 0 -> 2 (2 waits for 1); lane 1: 1 -> 3 (3 waits for 0)
    lanes = [[0, 2], [1, 3]]
    waits = [[], [], [1], [0]]
    with PythonEngine([rec.func(0.002), rec.func()], [(0, [0]), (0, [1]), (1, [2]), (1, [3])],
                      lanes, waits, allow_oversubscribe=True) as eng:
        for _ in range(20):
            rec.events.clear()
            eng.run()
            assert len(rec.events) == 8
            assert rec.index("end", 1) < rec.index("start", 2)
            assert rec.index("end", 0) < rec.index("start", 3)
            assert rec.index("end", 0) < rec.index("start", 2)
            assert rec.index("end", 1) < rec.index("start", 3)


def test_a_failing_step_stops_every_lane_and_is_named():
    calls = []

    def ok(i):
        calls.append(i)

    def bad(i):
        raise RuntimeError("kernel exploded")

    # lane 1 waits on the failing step 0: it must be woken, not hang
    eng = PythonEngine([ok, bad], [(1, [0]), (0, [1]), (0, [2])], [[0, 2], [1]],
                       [[], [0], []], step_names=["boom", "after", "next"],
                       allow_oversubscribe=True)
    with pytest.raises(LaneError, match=r"step 0 \(boom\) on lane 0 failed: RuntimeError: kernel "
                                        "exploded"):
        eng.run()
    assert 1 not in calls and 2 not in calls
    eng.close()
    with pytest.raises(RuntimeError, match="closed"):
        eng.run()
    eng.close()  # idempotent


def test_engine_is_usable_after_an_error():
    state = {"fail": True}

    def maybe(i):
        if state["fail"]:
            raise ValueError("once")

    with PythonEngine([maybe], [(0, [0]), (0, [1])], [[0], [1]], [[], [0]],
                      allow_oversubscribe=True) as eng:
        with pytest.raises(LaneError):
            eng.run()
        state["fail"] = False
        eng.run()


@pytest.mark.parametrize("lanes, waits, match", [
    ([[0, 1], [1]], [[], []], "on lane 0 and on lane 1"),
    ([[0]], [[], []], "step 1 is on no lane"),
    ([[0, 1]], [[], [0]], "on its own lane"),
    ([[0], [1]], [[], [5]], "waits for step 5"),
    ([[0], [4]], [[], []], "lists step 4"),
    ([[0], [1]], [[]], "1 wait lists for 2 steps"),
])
def test_invalid_lanes_are_named(lanes, waits, match):
    with pytest.raises(InvalidScheduleError, match=match):
        PythonEngine([print], [(0, []), (0, [])], lanes, waits, allow_oversubscribe=True)


def test_cycle_is_an_error_not_a_hang():
    with pytest.raises(CycleError, match="cycle") as info:
        PythonEngine([print], [(0, []), (0, []), (0, [])], [[0, 1], [2]], [[2], [], [1]],
                     allow_oversubscribe=True)
    assert set(info.value.cycle) == {0, 1, 2}


def test_unknown_function_index():
    with pytest.raises(InvalidScheduleError, match="calls function 3"):
        PythonEngine([print], [(3, [])], [[0]], [[]])


def test_more_lanes_than_cores_needs_permission(monkeypatch):
    import tvm_sched.runtime.cores as cores

    monkeypatch.setattr(cores, "usable_cores", lambda: [0, 1])
    steps = [(0, []) for _ in range(3)]
    with pytest.raises(InvalidScheduleError, match="3 lanes x 1 thread.*may use 2"):
        PythonEngine([lambda: None], steps, [[0], [1], [2]], [[], [], []])
    with pytest.raises(InvalidScheduleError, match="2 lanes x 2 thread"):
        PythonEngine([lambda: None], steps[:2], [[0], [1]], [[], []], threads_per_lane=2)
    PythonEngine([lambda: None], steps, [[0], [1], [2]], [[], [], []],
                 allow_oversubscribe=True).close()


def test_lane_cores_are_disjoint_blocks():
    assert lane_cores(0, 2, [0, 1, 2, 3]) == [0, 1]
    assert lane_cores(1, 2, [0, 1, 2, 3]) == [2, 3]
    assert lane_cores(2, 2, [0, 1, 2, 3]) is None


def test_threads_end_on_close_and_on_garbage_collection():
    import gc

    def lane_threads():
        return {t for t in threading.enumerate() if t.name.startswith("tvm_sched-lane-")}

    before = lane_threads()
    eng = PythonEngine([lambda: None], [(0, []), (0, [])], [[0], [1]], [[], []],
                       allow_oversubscribe=True)
    mine = lane_threads() - before
    assert len(mine) == 2 and all(t.is_alive() for t in mine)
    del eng
    gc.collect()
    for t in mine:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in mine)
    eng = PythonEngine([lambda: None], [(0, [])], [[0]], [[]])
    mine = lane_threads() - before
    eng.close()
    for t in mine:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in mine)

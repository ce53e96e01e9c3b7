"""ModeChooser: the lanes while they are faster, one thread while a busy neighbour holds a core,
back to the lanes when it leaves; exploring costs little on a steady machine."""

from __future__ import annotations

import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tvm_sched.runtime.adaptive import ModeChooser


def _drive(ch: ModeChooser, times, runs: int, rnd: random.Random) -> list[int]:
    """``runs`` runs; ``times[mode]`` seconds each, with 3% noise. The modes run, in order."""
    modes = []
    for _ in range(runs):
        m = ch.next()
        ch.record(m, times[m] * (1 + 0.03 * (rnd.random() - 0.5)))
        modes.append(m)
    return modes


def test_it_follows_the_machine_and_explores_rarely_when_steady():
    ch, rnd = ModeChooser(), random.Random(0)
    quiet, loaded = (0.56, 1.0), (1.25, 1.02)  # lanes, serial: seconds
    modes = _drive(ch, quiet, 3000, rnd)
    assert ch.current == 0
    assert modes[-2000:].count(1) <= 2000 / 256  # ~0.2-0.4% in the slower mode, steady
    modes = _drive(ch, loaded, 200, rnd)  # a busy process takes a core
    assert ch.current == 1 and modes[:20].count(1) >= 10  # switched within a few runs
    assert modes[-100:].count(0) <= 100 / 16
    modes = _drive(ch, quiet, 3000, rnd)  # it leaves
    assert ch.current == 0 and modes[-1000:].count(0) >= 990


def test_the_first_runs_measure_both_modes():
    ch = ModeChooser()
    seen = _drive(ch, (1.0, 0.5), 12, random.Random(1))
    assert 1 in seen and ch.current == 1 and ch.mean[0] is not None


def test_three_modes_are_explored_in_turn_and_the_fastest_kept():
    ch, rnd = ModeChooser(modes=3), random.Random(2)
    seen = _drive(ch, (1.0, 0.9, 0.6), 60, rnd)
    assert {1, 2} <= set(seen) and ch.current == 2
    _drive(ch, (0.5, 0.9, 0.6), 400, rnd)  # the lanes got their cores back
    assert ch.current == 0
    assert ch.mean[1] is not None and ch.mean[2] is not None


def test_a_change_of_the_machine_tries_every_mode_in_consecutive_runs():
    ch, rnd = ModeChooser(modes=3), random.Random(4)
    _drive(ch, (0.5, 0.55, 1.0), 2000, rnd)
    assert ch.current == 0
    modes = _drive(ch, (1.3, 0.7, 1.0), 6, rnd)  # a neighbour takes a core
    assert {1, 2} <= set(modes[:4]) and ch.current == 1


def test_a_choice_needs_two_modes():
    import pytest

    with pytest.raises(ValueError, match="2 modes"):
        ModeChooser(modes=1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.1, 10), min_size=2, max_size=3), st.integers(0, 2**31))
def test_it_settles_on_the_fastest_mode(times, seed):
    best = min(times)
    # within the noise two would be equally right
    assume(times.count(best) == 1 and all(t >= 1.15 * best for t in times if t != best))
    ch = ModeChooser(modes=len(times))
    _drive(ch, times, 600, random.Random(seed))
    assert ch.current == times.index(best)


# --------------------------------------------------------------------------------------------
# in a LaneModule: the same outputs bit for bit either way; the tuner's plans stay fixed
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tvm_sched.runtime.plan import LanePlan  # noqa: E402


@pytest.mark.integration
@pytest.mark.parametrize("engine", ["python", "native"])
def test_a_module_runs_on_its_lanes_or_on_one_thread_with_the_same_outputs(compiled, engine):
    from tvm_sched.runtime import native_engine as native
    from tvm_sched.runtime.cores import usable_cores

    if engine == "native" and not native.available():
        pytest.skip("the native engine is not built")
    kernels, inputs, ref = compiled("darts")
    rng = np.random.default_rng(3)
    lanes = max(2, min(3, len(usable_cores())))
    sched = _random_lane_schedule(kernels.graph, lanes, rng)
    with kernels.module(sched, engine=engine, allow_oversubscribe=True) as lm:
        assert lm.chooser is not None and lm.mode == "lanes"
        serial = lm.plan.serial_order()
        assert sorted(serial) == list(range(len(lm.plan.steps)))
        hb = lm.plan.happens_before()
        pos = {s: i for i, s in enumerate(serial)}
        assert all(pos[a] < pos[b] for a, b in zip(*np.nonzero(hb), strict=True))
        modes = ("lanes", "queues", "serial") if engine == "native" else ("lanes", "serial")
        assert lm.modes == modes
        for mode in [*range(len(modes))] * 2:  # force each mode in turn; poisoned arena between
            lm.chooser.current, lm.chooser.period = mode, 10**9
            lm.poison()
            assert lm.mode == modes[mode]
            for a, b in zip(lm(*inputs), ref, strict=True):
                np.testing.assert_array_equal(a, b)
        assert set(lm._engines) == set(modes)  # noqa: SLF001 - each made on first use
        if engine == "native":
            assert lm.queues is not None and len(lm.queues[0]) >= lanes
    with kernels.module(sched, engine=engine, allow_oversubscribe=True, adaptive=False) as lm:
        assert lm.chooser is None and lm.mode == "lanes" and lm.queues is None
    with kernels.module(None, engine=engine) as lm:  # one lane: nothing to choose
        assert lm.chooser is None


def _random_lane_schedule(graph, lanes, rng):
    import random

    from tvm_sched.schedule import Schedule
    from tvm_sched.testing.strategies import random_order

    order = random_order(graph, random.Random(int(rng.integers(2**31))))
    return Schedule(order=tuple(order.tolist()),
                    lane=tuple(int(x) for x in rng.integers(0, lanes, graph.num_nodes)))


def test_the_serial_order_of_a_plan_respects_lanes_and_waits():
    d = {"format": "tvm_sched.LanePlan", "version": 1, "kernels": ["k"],
         "tensors": [{"kind": "param", "shape": [1], "dtype": "float32", "index": 0}] + [
             {"kind": "extern", "shape": [1], "dtype": "float32", "node": i} for i in range(4)],
         "steps": [{"node": i, "name": f"s{i}", "kernel": 0, "args": [0 if i in (0, 2) else i,
                                                                      i + 1]}
                   for i in range(4)],
         "lanes": [[2, 3], [0, 1]], "waits": [[], [], [], [1]], "outputs": [2, 4],
         "num_input": 1, "num_params": 1, "arena_bytes": 0}
    d["steps"][1]["args"] = [1, 2]
    d["steps"][3]["args"] = [2, 4]
    d["steps"][2]["args"] = [0, 3]
    plan = LanePlan.from_dict(d)
    order = plan.serial_order()
    assert order.index(2) < order.index(3) and order.index(0) < order.index(1) < order.index(3)

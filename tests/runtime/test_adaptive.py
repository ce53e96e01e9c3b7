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


@settings(max_examples=50, deadline=None)
@given(st.floats(0.1, 10), st.floats(0.1, 10), st.integers(0, 2**31))
def test_it_settles_on_the_faster_mode(a, b, seed):
    assume(max(a, b) >= 1.15 * min(a, b))  # within the noise either would be right
    ch = ModeChooser()
    _drive(ch, (a, b), 600, random.Random(seed))
    assert ch.current == (0 if a < b else 1)

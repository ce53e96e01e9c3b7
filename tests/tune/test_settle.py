"""The runner's pause after a sample whose runtime leaves spinning threads behind (an anchor's):
the next candidate's sample starts only after it, and nothing pauses when nothing spins."""

from __future__ import annotations

import time

from tvm_sched.tune.lane_runner import ANCHOR_SETTLE_S, LaneAdapter
from tvm_sched.tune.runner import InterleavedRunner, Measurement


class _Clocked:
    """The part of a session adapter the rounds use: ``time`` records when each sample began
    and ended; ``settle_after`` asks for ``pause`` seconds after the candidates in ``spinning``."""

    name = "fake"

    def __init__(self, pause: float, spinning: set[str]):
        self.pause, self.spinning = pause, spinning
        self.number = 1
        self.calls: list[tuple[str, float, float]] = []

    def time(self, handle: str) -> float:
        t0 = time.monotonic()
        self.calls.append((handle, t0, time.monotonic()))
        return 1e-3

    def sample_runs(self, first_s: float) -> int:
        return 1

    def settle_after(self, handle: str) -> float:
        return self.pause if handle in self.spinning else 0.0

    def lost(self):
        return None


def _run(adapter: _Clocked) -> list[Measurement]:
    loaded = [(h, Measurement(index=h, device="fake")) for h in ("vm", "ort", "lanes")]
    told: list[Measurement] = []
    InterleavedRunner([], repeats=3)._rounds(adapter, loaded, "vm", told.append)
    return told


def test_the_sample_after_a_spinning_runtime_waits_for_it():
    a = _Clocked(0.03, {"ort"})
    told = _run(a)
    assert sorted(m.index for m in told) == ["lanes", "ort", "vm"]
    assert all(len(m.samples) == 3 for m in told)
    assert [h for h, _, _ in a.calls] == ["vm", "ort", "lanes"] * 4  # warm-up + 3 rounds
    for (h, _, end), (_, start, _) in zip(a.calls, a.calls[1:], strict=False):
        gap = start - end
        if h == "ort":
            assert gap >= 0.03, (h, gap)
        else:
            assert gap < 0.03, (h, gap)


def test_nothing_pauses_when_nothing_spins():
    a = _Clocked(0.5, set())
    t0 = time.monotonic()
    _run(a)
    assert time.monotonic() - t0 < 0.5


def test_the_lane_adapter_pauses_after_anchors_only():
    settle = LaneAdapter.settle_after
    assert settle(None, ("anchor", "onnxruntime")) == ANCHOR_SETTLE_S > 0
    assert settle(None, ("vm", None)) == 0.0
    assert settle(None, ("lanes", "plan.tar")) == 0.0

"""The tuner's decision rules on hand-written records (no TVM build, no device).

Moved out of the integration module ``test_tuner.py`` (issue 15 item 14): pure logic runs in the
default tier.
"""

from __future__ import annotations

import pytest

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.pick import parse_memory_budget, pick
from tvm_sched.tune.record import OrderFacts, TuneRecord


def rec(name, median, q1, q3, planned=100, error=None, anchor=None):
    """A measured record whose latency (and anchor: (median, q1, q3)) has these quartiles."""

    def samples(med, lo, hi):  # np.percentile of five samples: q1, median and q3 exactly
        return [lo, lo, med, hi, hi]

    kind = "vm" if name == "tvm" else "order"
    return TuneRecord("m", name, "llvm", "local", name, "test", kind,
                      samples=samples(median, q1, q3), error=error,
                      facts=OrderFacts(planned_bytes=planned),
                      anchor_samples=samples(*anchor) if anchor else [])


def test_pick_keeps_tvm_order_unless_beaten_beyond_noise():
    tvm_r = rec("tvm", 1.0, 0.95, 1.05, planned=200)
    close = rec("a", 0.97, 0.90, 1.00, planned=150)  # faster median, IQRs overlap
    clear = rec("b", 0.80, 0.78, 0.82, planned=300)  # beyond noise
    assert pick([tvm_r, close], "latency", None) == (tvm_r, close)
    assert pick([tvm_r, close], "latency", None, keep_default=False) == (close, close)
    assert pick([tvm_r, close, clear], "latency", None) == (clear, clear)
    # the fastest median is within noise, a slower one is beyond it: the latter is picked
    steady = rec("e", 0.85, 0.84, 0.86)
    wobbly = rec("f", 0.80, 0.60, 1.00)
    assert pick([tvm_r, steady, wobbly], "latency", None) == (steady, wobbly)
    # under a budget that excludes b, a is the fastest and still not beyond noise
    assert pick([tvm_r, close, clear], "latency", 250) == (tvm_r, close)
    assert pick([tvm_r, close, clear], "memory", None) == (close, close)
    assert pick([rec("x", 1, 1, 1, error="boom")], "latency", None) == (None, None)
    # memory: a tie with TVM's order keeps TVM's order
    tie = rec("c", 0.5, 0.4, 0.6, planned=200)
    assert pick([tvm_r, tie], "memory", None) == (tvm_r, tvm_r)
    # a candidate measured with its own anchor is judged against that anchor
    drift = rec("d", 0.9, 0.88, 0.92, anchor=(0.91, 0.90, 0.93))
    assert drift.relative == pytest.approx(0.9 / 0.91)
    assert pick([tvm_r, drift], "latency", None) == (tvm_r, drift)  # within its batch's noise


def test_pick_under_a_budget_ignores_records_without_planned_bytes():
    ok = rec("a", 1.0, 0.9, 1.1, planned=None)
    assert pick([ok], "latency", 10) == (None, None)


@pytest.mark.parametrize("text, planned, expected", [
    ("0.5x", 1000, 500), ("1X", 7, 7), ("4096", 0, 4096), ("64KiB", 0, 65536),
    ("2mib", 0, 2 << 20), ("1GiB", 0, 1 << 30), (123, 0, 123), (None, 5, None),
])
def test_memory_budget_forms(text, planned, expected):
    assert parse_memory_budget(text, planned) == expected


@pytest.mark.parametrize("text", ["infx", "inf", "nanx", "-5", "-0.5x", "0", "0x", "lots",
                                  "1e400KiB", "x"])
def test_memory_budget_that_cannot_be_a_budget_is_a_tune_input_error(text):
    """Issue 15 item 4: ``infx`` was an OverflowError traceback, ``-5`` ran the whole tuner."""
    with pytest.raises(TuneInputError, match="memory budget must be"):
        parse_memory_budget(text, 1000)


def _lane_result(vm_ms: float, predicted_ms: list[float], best: str = "relax-vm"):
    from pathlib import Path

    from tvm_sched.tune.record import LaneFacts
    from tvm_sched.tune.result import TuneResult

    def lane_rec(name, kind, lanes, predicted, ms):
        return TuneRecord("m", name, "llvm", "local", name, "test", kind,
                          samples=[ms * 1e-3] * 5,
                          facts=LaneFacts(lanes=lanes, predicted=predicted * 1e-3))

    vm = lane_rec("relax-vm", "vm", 1, 2 * vm_ms, vm_ms)
    one = lane_rec("executor m=1", "lanes", 1, 1.9 * vm_ms, 1.9 * vm_ms)  # never compared
    plans = [lane_rec(f"p{i}", "lanes", 2, p, p * 1.02) for i, p in enumerate(predicted_ms)]
    records = [vm, one, *plans]
    chosen = next(r for r in records if r.candidate == best)
    return TuneResult(model="m", objective="latency", records=records, best=chosen,
                      baseline=vm, spearman={}, work_dir=Path("."), lanes=2)


def test_the_report_says_when_no_lane_plan_was_predicted_to_beat_the_vm():
    from tvm_sched.tune.report import lanes_below_the_vm

    why = lanes_below_the_vm(_lane_result(2.6, [2.7, 2.9]))
    assert why is not None and "2.70 ms" in why and "2.60 ms" in why and "2 lanes" in why
    # a plan predicted below the VM's latency: the lanes lost on the device, nothing to say
    assert lanes_below_the_vm(_lane_result(2.6, [2.5, 2.9])) is None
    # a lane plan picked: nothing to explain
    assert lanes_below_the_vm(_lane_result(2.6, [2.7], best="p0")) is None

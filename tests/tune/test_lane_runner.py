"""LaneRunner's protocol with the device calls faked (no TVM): output checks against the VM,
interleaved rounds anchored on the VM, errors told once, a device that hangs is lost."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tvm_sched.errors import DeviceUnavailableError
from tvm_sched.tune.lane_runner import LaneRunner
from tvm_sched.tune.objective import LaneCandidate


class _Sess:
    def cpu(self, i):
        return "cpu"


def _runner(outputs, times, *, timeout=5.0, hang=None, repeats=3, reopen=None):
    """A runner whose VM gives [1, 2]; lane module NAME gives outputs[NAME] and times[NAME]."""
    r = LaneRunner("fake", _Sess(), SimpleNamespace(), [np.zeros(1)], repeats=repeats,
                   min_repeat_ms=0.0, timeout=timeout, reopen=reopen)
    calls = []
    r.vm_outputs = lambda: [np.array([1.0, 2.0])]
    r.vm_time = lambda n: (calls.append("vm"), 0.010)[1]
    r.upload = lambda path: Path(path).name

    def outs(name, count):
        if isinstance(outputs[name], Exception):
            raise outputs[name]
        return [np.asarray(outputs[name])]

    def lane_time(name, n):
        if name == hang and (reopen is None or not r.reconnects):
            threading.Event().wait(3)  # longer than the time limit
        calls.append(name)
        if isinstance(times[name], Exception):
            raise times[name]
        return times[name]

    r.lane_outputs = outs
    r.lane_time = lane_time
    r._alive = lambda: None
    return r, calls


def _items(names):
    vm = LaneCandidate("relax-vm", "baseline", "vm", 1, baseline=True)
    built = [(vm, SimpleNamespace(path=None, error=None))]
    for i, n in enumerate(names):
        c = LaneCandidate(n, n, "lanes", 2, (0, 1), (0, i))
        c.lane = tuple(int(b) for b in f"{i:02b}")
        built.append((c, SimpleNamespace(path=Path(f"/x/{n}"), error=None)))
    return built


def test_rounds_are_interleaved_and_anchored_on_the_vm():
    r, calls = _runner({"a": [1.0, 2.0], "b": [1.0, 2.0]}, {"a": 0.005, "b": 0.008})
    built = _items(["a", "b"])
    got = []
    r.measure(built, built[0], got.append)
    assert calls == ["vm", "a", "b"] + ["vm", "a", "b"] * 3  # warm-ups, then the rounds
    by = {m.hash: m for m in got}
    assert len(got) == 3 and all(m.error is None for m in got)
    a = by[built[1][0].hash]
    assert a.samples == [0.005] * 3 and a.anchor == [0.010] * 3


def test_wrong_outputs_and_failures_are_results_told_once():
    r, _ = _runner({"ok": [1.0, 2.0], "wrong": [1.0, 2.5], "crash": RuntimeError("boom"),
                    "slowfail": [1.0, 2.0]},
                   {"ok": 0.005, "wrong": 0.001, "crash": 0.001,
                    "slowfail": RuntimeError("timer died")})
    built = _items(["ok", "wrong", "crash", "slowfail"])
    built.append((LaneCandidate("nobuild", "x", "lanes", 2, (0,), (1,)),
                  SimpleNamespace(path=None, error="plan rejected")))
    got = []
    r.measure(built[1:], built[0], got.append)  # the VM only as the anchor: not told
    errs = {m.hash: m.error for m in got}
    assert len(got) == len(errs) == 5
    name = {c.hash: c.name for c, _ in built}
    errs = {name[h]: e for h, e in errs.items()}
    assert errs["ok"] is None
    assert "differ from the VM" in errs["wrong"]
    assert errs["crash"].startswith("load/run failed") and "boom" in errs["crash"]
    assert errs["slowfail"].startswith("warm-up failed")
    assert errs["nobuild"] == "build failed: plan rejected"


def test_a_device_that_hangs_is_lost_with_the_records_so_far():
    r, _ = _runner({"a": [1.0, 2.0], "h": [1.0, 2.0]}, {"a": 0.005, "h": 0.005}, timeout=0.5,
                   hang="h")
    built = _items(["a", "h"])
    got = []
    with pytest.raises(DeviceUnavailableError, match="did not answer within"):
        r.measure(built, built[0], got.append)
    name = {c.hash: c.name for c, _ in built}
    assert [(name[m.hash], m.error.split(" failed")[0]) for m in got] == [("h", "warm-up")]
    r.close()


def test_a_lost_device_is_reopened_once_and_the_rest_measured_there():
    sessions = []

    def reopen():
        sessions.append(_Sess())
        return sessions[-1]

    r, calls = _runner({"a": [1.0, 2.0], "h": [1.0, 2.0], "b": [1.0, 2.0]},
                       {"a": 0.005, "h": 0.005, "b": 0.007}, timeout=0.5, hang="h",
                       reopen=reopen)
    built = _items(["a", "h", "b"])
    got = []
    r.measure(built, built[0], got.append)
    name = {c.hash: c.name for c, _ in built}
    by = {name[m.hash]: m for m in got}
    assert sorted(by) == ["a", "b", "h", "relax-vm"] and len(got) == 4  # each told once
    assert by["h"].error.startswith("warm-up failed") and "did not answer" in by["h"].error
    assert r.reconnects == 1 and r.sess is sessions[0]
    for n in ("a", "b", "relax-vm"):  # measured again, whole, on the new session
        assert by[n].error is None and len(by[n].samples) == 3 and len(by[n].anchor) == 3
    r.close()


def test_a_device_lost_again_after_reopening_raises():
    r, _ = _runner({"a": [1.0, 2.0], "h": [1.0, 2.0]}, {"a": 0.005, "h": 0.005},
                   timeout=0.5, hang="h", reopen=_Sess)
    inner = r.lane_time

    def lane_time(name, n):  # the new session hangs on another candidate
        if r.reconnects and name == "a":
            threading.Event().wait(3)
        return inner(name, n)

    r.lane_time = lane_time
    built = _items(["a", "h"])
    got = []
    with pytest.raises(DeviceUnavailableError, match="did not answer"):
        r.measure(built, built[0], got.append)
    assert r.reconnects == 1
    name = {c.hash: c.name for c, _ in built}
    assert sorted(name[m.hash] for m in got) == ["a", "h"]  # both culprits keep their errors
    r.close()

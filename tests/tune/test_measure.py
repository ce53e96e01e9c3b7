"""The measurement protocol and its faults: build errors, wrong outputs, time-outs, crashes."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from tvm_sched.errors import DeviceUnavailableError
from tvm_sched.graph import priority_orders_batch
from tvm_sched.tune import EmbeddedDevices, InProcessDevices, Measurer, ServerDevices
from tvm_sched.tune.builder import Built
from tvm_sched.tune.runner import _Device
from tvm_sched.tune.server import EmbeddedServer

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def items(model, builder):
    g = model.graphs[0]
    orders = priority_orders_batch(g, np.random.default_rng(0).random((4, g.num_nodes)))
    out = [(i, builder.build([tuple(o)]), f"t{i}") for i, o in enumerate(orders)]
    assert all(b.error is None for _, b, _ in out)
    return out


def measure(runner, builder, reference, items, **kw):
    args, ref = reference
    got = {}
    m = Measurer(runner, kernels=builder.kernels, args=args, reference=ref, repeats=3,
                 min_repeat_ms=1, **kw)
    try:
        m.measure(items, lambda meas: got.__setitem__(meas.index, meas))
    finally:
        m.close()
    return got, m


def test_in_process_interleaved_repeats_and_output_check(builder, reference, items):
    got, _ = measure(InProcessDevices(), builder, reference, items)
    assert sorted(got) == [0, 1, 2, 3]
    for meas in got.values():
        assert meas.error is None and len(meas.samples) == 3
        assert all(s > 0 for s in meas.samples) and meas.check == 0.0


def test_build_error_and_wrong_outputs_are_recorded_and_the_rest_measured(builder, reference,
                                                                         items):
    broken = (9, Built(None, False, 0.0, "ValueError: boom"), "t9")
    got, _ = measure(InProcessDevices(), builder, reference, [*items[:2], broken])
    assert got[9].error == "build failed: ValueError: boom" and not got[9].samples
    assert got[0].error is None and got[1].error is None
    args, ref = reference
    wrong = ([r + 1.0 for r in ref])
    got, _ = measure(InProcessDevices(), builder, (args, wrong), items[:2])
    assert all("outputs differ from the reference" in m.error for m in got.values())


def test_a_candidate_that_hangs_times_out_and_the_session_is_reopened(builder, reference,
                                                                     items, monkeypatch):
    slow: set[int] = set()
    load, timer = _Device.load, _Device.time

    def patched_load(self, built, tag):
        vm, outs = load(self, built, tag)
        if tag == "t1":
            slow.add(id(vm))
        return vm, outs

    def patched_time(self, vm):
        if id(vm) in slow:
            return self.call(lambda: time.sleep(3.0) or 1.0)
        return timer(self, vm)

    monkeypatch.setattr(_Device, "load", patched_load)
    monkeypatch.setattr(_Device, "time", patched_time)
    got, m = measure(InProcessDevices(), builder, reference, items[:3], timeout=1.0)
    assert "timed out after 1 s" in got[1].error
    assert got[0].error is None and got[2].error is None and len(got[2].samples) == 3
    assert m.reconnects == 1


@pytest.mark.rpc
def test_a_crashed_embedded_server_is_restarted_and_the_culprit_recorded(builder, reference,
                                                                          items, monkeypatch):
    runner = EmbeddedDevices(lifetime=300)
    load = _Device.load
    pids = []

    def crashing_load(self, built, tag):
        if tag == "t2" and not pids:
            pids.append(runner.server.pid)
            os.killpg(runner.server.pid, signal.SIGKILL)  # the server dies under this candidate
        return load(self, built, tag)

    monkeypatch.setattr(_Device, "load", crashing_load)
    try:
        got, m = measure(runner, builder, reference, items)
        assert got[2].error.startswith("device session lost")
        assert all(got[i].error is None and len(got[i].samples) == 3 for i in (0, 1, 3))
        assert m.reconnects == 1 and runner.server.pid != pids[0] and runner.server.alive()
    finally:
        runner.close()
    assert not runner.server.alive()


@pytest.mark.rpc
def test_a_server_that_stays_dead_stops_the_run_with_records_kept(builder, reference, items,
                                                                  monkeypatch):
    server = EmbeddedServer(lifetime=300).start()
    load = _Device.load

    def crashing_load(self, built, tag):
        if tag == "t2":
            server.stop()
        return load(self, built, tag)

    monkeypatch.setattr(_Device, "load", crashing_load)
    args, ref = reference
    got = {}
    m = Measurer(ServerDevices(server.address), kernels=builder.kernels, args=args, reference=ref,
                 repeats=2, min_repeat_ms=1, batch=1)
    try:
        with pytest.raises(DeviceUnavailableError, match="cannot connect to the RPC server"):
            m.measure(items, lambda meas: got.__setitem__(meas.index, meas))
    finally:
        m.close()
        server.stop()
    assert got[0].error is None and got[1].error is None  # finished before the loss: kept
    assert got[2].error.startswith("device session lost") and 3 not in got

"""Measuring through an RPC tracker on loopback: work spread over devices; no device: an error."""

from __future__ import annotations

import pytest

pytest.importorskip("tornado")  # the tracker needs the rpc extra

from tvm_sched.errors import DeviceUnavailableError  # noqa: E402
from tvm_sched.tune import Measurer, TrackerDevices  # noqa: E402
from tvm_sched.tune.server import EmbeddedServer  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.rpc]


@pytest.fixture
def tracker():
    from tvm.rpc.tracker import Tracker

    tr = Tracker(host="127.0.0.1", port=9190, port_end=9390, silent=True)
    try:
        yield tr
    finally:
        tr.terminate()


def test_two_servers_under_one_tracker_both_receive_work(tracker, builder, reference, model):
    from tvm_sched.graph import priority_orders_batch

    servers = [EmbeddedServer(tracker=("127.0.0.1", tracker.port), key="cpu-test",
                              lifetime=300).start() for _ in range(2)]
    try:
        runner = TrackerDevices(("127.0.0.1", tracker.port), "cpu-test", wait=60, min_devices=2)
        import numpy as np

        g = model.graphs[0]
        orders = priority_orders_batch(g, np.random.default_rng(1).random((4, g.num_nodes)))
        items = [(i, builder.build([tuple(o)]), f"k{i}") for i, o in enumerate(orders)]
        args, ref = reference
        got = {}
        m = Measurer(runner, kernels=builder.kernels, args=args, reference=ref, repeats=2,
                     min_repeat_ms=1)
        try:
            m.measure(items, lambda meas: got.__setitem__(meas.index, meas), anchor=items[0])
        finally:
            m.close()
        assert sorted(got) == [0, 1, 2, 3] and all(x.error is None for x in got.values())
        assert len({x.device for x in got.values()}) == 2  # both devices measured
        # the anchor (item 0) is interleaved into the other device's batch too
        assert all(x.anchor is not None and len(x.anchor) == 2 for x in got.values())
        assert got[0].anchor == got[0].samples
    finally:
        for s in servers:
            s.stop()


def test_no_free_device_of_the_key_waits_then_fails_clearly(tracker):
    seen = []
    runner = TrackerDevices(("127.0.0.1", tracker.port), "no-such-device", wait=2.0,
                           status=seen.append)
    with pytest.raises(DeviceUnavailableError,
                       match=r"no free device with key 'no-such-device' .* after 2 s"):
        runner.open()
    # it waited, saying so (no wall-clock assertion: the message is the runner's own account)
    assert seen and "waiting for a free 'no-such-device' device" in seen[0]

"""Lane tuning on a tracker with two tvm_sched servers; the embedded server after a long build."""

from __future__ import annotations

import time

import pytest

from tvm_sched.tune.server import EmbeddedServer

pytestmark = [pytest.mark.integration, pytest.mark.rpc]


def test_ready_line_is_read_after_a_build_longer_than_the_start_deadline():
    # the deadline is counted from the launch; a caller that comes back after it (a long
    # build) must still find the server that has been listening meanwhile
    srv = EmbeddedServer(lifetime=120, start_timeout=0.5).launch()
    try:
        t0 = time.monotonic()
        while srv.proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.5)  # the "build": past the deadline, until the server is surely up
            import select

            if select.select([srv.proc.stdout], [], [], 0)[0]:
                break
        srv.wait_ready()
        assert srv.port is not None and srv.alive()
    finally:
        srv.stop()


def test_lanes_on_a_tracker_with_two_servers(tmp_path):
    pytest.importorskip("tornado")
    from tvm.rpc.tracker import Tracker

    from tvm_sched.tune import TrackerDevices, TuneConfig, load_model, tune

    model = load_model(model="inception")
    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9390, silent=True)
    servers = []
    try:
        servers = [EmbeddedServer(tracker=("127.0.0.1", tracker.port), key="lanes-test",
                                  lifetime=300).start() for _ in range(2)]
        runner = TrackerDevices(("127.0.0.1", tracker.port), "lanes-test", wait=60,
                               min_devices=2)
        cfg = TuneConfig(lanes="auto", solvers=("list", "random-list"), solver_budget=0.5,
                         samples=32, top_k=4, repeats=2, min_repeat_ms=1.0)
        res = tune(model, "llvm", runner, tmp_path, cfg)
        bad = [(r.candidate, r.error) for r in res.records if r.error]
        assert not bad, bad
        assert len({r.device for r in res.records}) == 2  # both devices measured candidates
        assert all(len(r.anchor_samples) == 2 for r in res.records)  # each anchored on a VM
        assert res.best is not None
    finally:
        for s in servers:
            s.stop()
        tracker.terminate()


def test_lanes_on_a_plain_tvm_server_say_what_to_start(tmp_path):
    from tvm import rpc

    from tvm_sched.errors import TuneInputError
    from tvm_sched.tune import ServerDevices, TuneConfig, load_model, tune

    model = load_model(model="inception")
    server = rpc.Server(host="127.0.0.1", port=9391, port_end=9490, silent=True)
    try:
        for lanes in ("auto", 2):
            with pytest.raises(TuneInputError, match="tvm_sched RPC server"):
                tune(model, "llvm", ServerDevices(("127.0.0.1", server.port)), tmp_path,
                     TuneConfig(lanes=lanes, solvers=("list",)))
        assert not (tmp_path / "lane_records.jsonl").exists()
    finally:
        server.terminate()

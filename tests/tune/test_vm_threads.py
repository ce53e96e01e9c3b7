"""The Relax VM anchor runs on the threads it was built for, whatever ``TVM_NUM_THREADS`` the
process that started the server had (a benchmark that set it to 1 for itself measured the
"all-core" VM on one thread: 4.4 ms instead of 2.4 ms on the bench resnet)."""

from __future__ import annotations

import pytest

from tvm_sched.runtime import rpc as trpc
from tvm_sched.runtime.cores import num_cores
from tvm_sched.tune.session import SessionAdapter


@pytest.fixture(scope="module")
def one_thread_parent_server():
    """An embedded server started from a process whose ``TVM_NUM_THREADS`` is 1."""
    from tvm_sched.tune.server import EmbeddedServer

    mp = pytest.MonkeyPatch()
    mp.setenv("TVM_NUM_THREADS", "1")
    server = EmbeddedServer(lifetime=300)
    try:
        server.start()
    finally:
        mp.undo()
    try:
        yield server
    finally:
        server.stop()


def _session(server):
    from tvm import rpc

    return rpc.connect(*server.address)


@pytest.mark.rpc
def test_the_server_pool_cap_is_every_usable_core_not_the_parents(one_thread_parent_server):
    sess = _session(one_thread_parent_server)
    cores = int(sess.get_function(trpc.NUM_CORES)())
    assert cores == num_cores()
    adapter = SessionAdapter("dev", sess, threads=cores)
    try:
        assert adapter.call(adapter.size_pool) == cores
        assert int(sess.get_function("runtime.NumThreads")()) == cores
    finally:
        adapter.close()


@pytest.mark.rpc
def test_size_pool_shrinks_and_grows_back(one_thread_parent_server):
    if num_cores() < 2:
        pytest.skip("needs two usable cores")
    sess = _session(one_thread_parent_server)
    one, all_ = SessionAdapter("a", sess, threads=1), SessionAdapter("b", sess, threads=2)
    try:
        assert one.call(one.size_pool) == 1
        assert all_.call(all_.size_pool) == 2
    finally:
        one.close()
        all_.close()


class _Recorder:
    """A session that records the device functions asked for and called."""

    def __init__(self, pool: int | None = None, has_config: bool = True):
        self.pool, self.has_config, self.calls = pool, has_config, []

    def cpu(self, _):
        return "cpu"

    def get_function(self, name):
        if name == trpc.CONFIG_THREADS:
            if not self.has_config:
                raise AttributeError(name)

            def config(n):
                self.calls.append((name, n))
                self.pool = self.pool if self.pool is not None and self.pool < n else n
                return n
            return config
        if name == "runtime.NumThreads":
            return lambda: self.pool
        raise AssertionError(f"unexpected device function {name}")


def test_no_threads_asked_means_no_device_call():
    s = _Recorder()
    assert SessionAdapter("dev", s).size_pool() is None
    assert s.calls == []


def test_a_capped_pool_is_reported_and_warned(caplog):
    s = _Recorder(pool=1)
    with caplog.at_level("WARNING"):
        assert SessionAdapter("dev", s, threads=2).size_pool() == 1
    assert s.calls == [(trpc.CONFIG_THREADS, 2)]
    assert "1 threads, not the 2 asked" in caplog.text


def test_a_plain_tvm_server_keeps_its_pool_with_a_warning(caplog):
    s = _Recorder(has_config=False)
    with caplog.at_level("WARNING"):
        assert SessionAdapter("dev", s, threads=2).size_pool() is None
    assert "plain TVM server" in caplog.text


def test_the_lane_adapter_sizes_the_pool_to_the_vm_kernels_cores(model, tmp_path):
    """The lane tuner's VM anchor: its adapter asks for the VM kernels' ``num-cores``."""
    import tvm

    from tvm_sched.runtime.builder import LaneKernels
    from tvm_sched.tune.lane_runner import LaneAdapter
    from tvm_sched.tune.lanes import LaneBuilder

    target = tvm.target.Target({"kind": "llvm", "num-cores": 3})
    builder = LaneBuilder(LaneKernels(model.mod, target, params=model.params), tmp_path)
    assert builder.vm_threads == 3
    s = _Recorder()
    adapter = LaneAdapter("dev", s, builder, model.inputs)
    try:
        assert adapter.threads == 3
        assert adapter.size_pool() == 3
        assert s.calls == [(trpc.CONFIG_THREADS, 3)]
    finally:
        adapter.close()
    assert LaneBuilder(LaneKernels(model.mod, tvm.target.Target("llvm"), params=model.params),
                       tmp_path, tmp_path / "plain.so").vm_threads is None


def test_the_report_says_when_the_device_capped_the_vm_pool():
    from tvm_sched.tune.report import kernels_line

    base = {"kernel_tuning": {}, "threads_per_lane": 1, "cores": 2}
    assert "capped" not in kernels_line(base) and "ran the VM on" not in kernels_line(base)
    assert "ran the VM on" not in kernels_line(dict(base, vm_pool_threads=[2]))
    line = kernels_line(dict(base, vm_pool_threads=[1, 2]))
    assert "ran the VM on 1 thread(s), not 2" in line and "TVM_NUM_THREADS" in line


def test_local_kernel_tuning_workers_are_not_capped_by_the_tuners_env(monkeypatch):
    """MetaSchedule's LocalRunner workers inherit ``TVM_NUM_THREADS``; their initializer lifts
    the cap to every usable core before any kernel runs there."""
    from tvm_sched.tune import kernels

    monkeypatch.setenv("TVM_NUM_THREADS", "1")
    kernels._uncap_pool()
    import os

    assert os.environ["TVM_NUM_THREADS"] == str(num_cores())


def test_in_process_sessions_size_their_pool_without_a_warning(caplog):
    from tvm_sched.tune.devices import InProcessDevices

    (name, sess), = InProcessDevices().open()
    adapter = SessionAdapter(name, sess, threads=1)
    try:
        with caplog.at_level("WARNING"):
            assert adapter.call(adapter.size_pool) == 1
        assert "plain TVM server" not in caplog.text
    finally:
        adapter.close()



def test_a_lanes_kernels_are_profiled_with_a_lanes_threads(monkeypatch):
    """``time_step`` runs a step on a thread whose TVM pool has the plan's threads per lane,
    whatever the session thread's pool (every core: the tuned bench models' one-lane
    predictions were 0.52-0.86 of the measured plan), and leaves that pool as it was."""
    import threading
    from types import SimpleNamespace

    import tvm

    if num_cores() < 2:
        pytest.skip("needs two usable cores")
    seen = []

    def run_step(step):
        seen.append((step, int(tvm.get_global_func("runtime.NumThreads")()),
                     threading.current_thread() is threading.main_thread()))
        return 1e-3

    def module(threads):
        plan = SimpleNamespace(num_lanes=1, lanes=[[3, 1]], threads_per_lane=threads)
        return SimpleNamespace(plan=plan, run_step=run_step)

    trpc.config_threads(2)  # the session thread's pool: every core, as the VM's
    monkeypatch.setattr(trpc, "_module", lambda path: module(1))
    assert trpc._time_step("one_lane.tar", 0) == 1e-3
    assert trpc._time_step("one_lane.tar", 1) == 1e-3
    monkeypatch.setattr(trpc, "_module", lambda path: module(2))
    trpc._time_step("two_thread_lane.tar", 1)
    assert seen == [(3, 1, False), (1, 1, False), (1, 2, False)]
    assert int(tvm.get_global_func("runtime.NumThreads")()) == 2

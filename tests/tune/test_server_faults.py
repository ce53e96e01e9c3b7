"""The device path never waits without a deadline (issue 20, items 1, 2, 3, 9, 14).

Faults are injected for real: a session fork killed by SIGSEGV/SIGBUS (the server's test-only
``tvm_sched.testing.fault``, registered with ``TVM_SCHED_TEST_FAULTS=1``), a server stopped with
SIGSTOP or busy with a hung session (alive, accepting, never answering), a plain socket that
listens and never replies, a parent SIGKILLed while its server starts. Every process a test
starts is ended by its pid in a ``finally``; waits on code under test are bounded by a thread
join, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import tvm_sched.tune
from tvm_sched.cli import main
from tvm_sched.errors import DeviceUnavailableError
from tvm_sched.tune.devices import EmbeddedDevices, ServerDevices, TrackerDevices
from tvm_sched.tune.devices.base import call_with_deadline, check_answers
from tvm_sched.tune.server import FAULT_FUNC, FAULTS_ENV, READY, EmbeddedServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.rpc]


# -- helpers ----------------------------------------------------------------------------------
def gone(pid: int, within: float = 30.0) -> bool:
    """``pid`` has ended (or is a zombie) within ``within`` seconds."""
    import psutil

    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def kill_quietly(pid: int | None, group: bool = False) -> None:
    if pid is None:
        return
    try:
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def bounded(fn, limit: float):
    """``fn()`` in a thread joined for ``limit`` seconds: (finished, value or exception)."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            box["value"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    return not t.is_alive(), box.get("value")


@pytest.fixture
def deaf_port():
    """A port where a plain socket listens (the backlog accepts) and nothing ever replies."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture(scope="module")
def faulty_server():
    """An embedded server with the fault-injection function registered."""
    old = os.environ.get(FAULTS_ENV)
    os.environ[FAULTS_ENV] = "1"
    server = EmbeddedServer(lifetime=300)
    try:
        server.start()
    finally:
        if old is None:
            os.environ.pop(FAULTS_ENV)
        else:
            os.environ[FAULTS_ENV] = old
    try:
        yield server
    finally:
        server.stop()


def fault(sess, kind: str):
    return sess.get_function(FAULT_FUNC)(kind)


def hang_in_background(sess) -> None:
    """The session spins in a "kernel" (and ignores SIGTERM) until its server goes."""
    def run():
        try:
            fault(sess, "hang")
        except Exception:  # noqa: BLE001 - the call ends when the test kills the server
            pass

    threading.Thread(target=run, daemon=True).start()


# -- the one health check and the deadline helper ---------------------------------------------
def test_the_handshake_check_tells_a_server_a_tracker_and_a_deaf_port_apart(faulty_server,
                                                                             deaf_port):
    assert check_answers(*faulty_server.address, "the RPC server", "connect to") < 3.0
    with pytest.raises(DeviceUnavailableError, match="no answer to the RPC handshake within "
                                                     "0.5 s") as err:
        check_answers("127.0.0.1", deaf_port, "the RPC server", "connect to", timeout=0.5)
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(DeviceUnavailableError, match="no answer to the tracker handshake"):
        check_answers("127.0.0.1", deaf_port, "the RPC tracker", "reach", tracker=True,
                      timeout=0.5)
    # a server is not a tracker: it closes the connection on the tracker's magic
    with pytest.raises(DeviceUnavailableError, match="cannot reach the RPC tracker"):
        check_answers(*faulty_server.address, "the RPC tracker", "reach", tracker=True)
    with pytest.raises(DeviceUnavailableError, match="Connection refused"):
        check_answers("127.0.0.1", free_port(), "the RPC server", "connect to")


def test_a_call_past_its_deadline_is_an_error_and_its_late_result_is_discarded():
    release = threading.Event()
    late = []
    timed_out = []

    def slow():
        release.wait(10)
        return "session"

    with pytest.raises(DeviceUnavailableError, match="cannot connect to X: no answer within "
                                                     "0.2 s"):
        call_with_deadline(slow, 0.2, "cannot connect to X", on_timeout=lambda: timed_out.append(1),
                           discard=late.append)
    assert timed_out == [1]
    release.set()
    for _ in range(100):
        if late:
            break
        time.sleep(0.05)
    assert late == ["session"]
    with pytest.raises(DeviceUnavailableError, match="cannot connect to X: boom"):
        call_with_deadline(lambda: (_ for _ in ()).throw(RuntimeError("trace\nboom")), 5,
                           "cannot connect to X")
    assert call_with_deadline(lambda: 7, 5, "x") == 7


def test_the_runners_deadlines_follow_the_tuners_timeout():
    from tvm_sched.tune.devices import devices_from_args

    srv = devices_from_args(rpc_server="127.0.0.1:9", timeout=10)
    assert (srv.connect_timeout, srv.check_timeout) == (10, 3)
    tr = devices_from_args(rpc_tracker="127.0.0.1:9", rpc_key="cpu", timeout=1)
    assert (tr.connect_timeout, tr.check_timeout) == (1, 1)
    emb = devices_from_args()
    assert (emb.connect_timeout, emb.check_timeout) == (30, 3)


def test_a_server_that_never_starts_is_a_device_error(monkeypatch):
    import tvm_sched.tune.server as server_module

    monkeypatch.setattr(server_module.sys, "executable", "/bin/false")
    server = EmbeddedServer(start_timeout=5)
    with pytest.raises(DeviceUnavailableError, match="did not start within 5 s"):
        server.start()
    assert server.proc is None and server._root is None


# -- item 1: a crashed session does not make the server deaf ----------------------------------
@pytest.mark.parametrize("kind", ["SIGSEGV", "SIGBUS", "exit"])
def test_a_session_that_crashes_does_not_make_the_server_deaf(faulty_server, kind):
    runner = ServerDevices(faulty_server.address, connect_timeout=10, check_timeout=5)
    sess = runner.open()[0][1]
    first = fault(sess, "pid")
    with pytest.raises(Exception):  # noqa: B017 - TVM's error for a session that died
        fault(sess, kind)
    del sess
    assert gone(first, 10)
    again = runner.reopen("x")  # a new session on the same server, within the deadlines
    assert fault(again, "pid") not in (first, -1)
    assert faulty_server.alive()
    # the dead session's work directory was removed: only the live session's is left
    assert len(os.listdir(faulty_server._root)) == 1


def test_a_server_behind_a_tracker_registers_again_after_a_crash(monkeypatch):
    pytest.importorskip("tornado")
    from tvm.rpc.tracker import Tracker

    monkeypatch.setenv(FAULTS_ENV, "1")
    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9390, silent=True)
    server = None
    try:
        server = EmbeddedServer(tracker=("127.0.0.1", tracker.port), key="crash-test",
                                lifetime=300).start()
        runner = TrackerDevices(("127.0.0.1", tracker.port), "crash-test", wait=30,
                               connect_timeout=10)
        name, sess = runner.open()[0]
        first = fault(sess, "pid")
        with pytest.raises(Exception):  # noqa: B017 - TVM's error for a session that died
            fault(sess, "SIGBUS")
        del sess
        again = runner.reopen(name)  # the tracker hands out the same server again
        assert fault(again, "pid") not in (first, -1)
        runner.close()
    finally:
        if server is not None:
            server.stop()
        tracker.terminate()


# -- item 2: reopening a dead or deaf embedded server has a deadline --------------------------
@pytest.mark.parametrize("deafness", ["stopped", "busy"])
def test_a_deaf_embedded_server_is_restarted_on_reopen(deafness, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, "1")
    runner = EmbeddedDevices(lifetime=300, connect_timeout=10, check_timeout=1)
    pids, roots = [], []
    try:
        sess = runner.open()[0][1]
        pids.append(runner.server.pid)
        roots.append(runner.server._root)
        fork = fault(sess, "pid")
        if deafness == "stopped":
            os.kill(runner.server.pid, signal.SIGSTOP)  # alive, accepting, never answering
        else:  # the session hangs in a "kernel": the one-session server is busy for good
            hang_in_background(sess)
        finished, new = bounded(lambda: runner.reopen("embedded"), 60)
        assert finished, "reopen blocked"
        assert not isinstance(new, BaseException), new
        assert runner.server.pid != pids[0] and fault(new, "pid") > 0
        assert gone(pids[0], 10) and gone(fork, 10)  # the old server and its fork went
        roots.append(runner.server._root)
    finally:
        runner.close()
        for pid in pids:
            kill_quietly(pid, group=True)
    assert not any(os.path.exists(r) for r in roots)  # session directories removed


def test_a_deaf_user_server_is_one_line_within_the_deadline(deaf_port):
    runner = ServerDevices(("127.0.0.1", deaf_port), connect_timeout=2, check_timeout=1)
    for step in (runner.check, runner.open, lambda: runner.reopen("x")):
        finished, err = bounded(step, 30)
        assert finished and isinstance(err, DeviceUnavailableError), err
        assert "cannot connect to the RPC server at 127.0.0.1:" in str(err)
        assert len(str(err).splitlines()) == 1


def test_rpc_connect_itself_has_a_deadline(faulty_server, monkeypatch):
    """The handshake check passes but the session never comes: the connect's deadline."""
    from tvm import rpc

    release = threading.Event()
    monkeypatch.setattr(rpc, "connect", lambda *a, **k: release.wait(30))
    runner = ServerDevices(faulty_server.address, connect_timeout=0.5)
    try:
        with pytest.raises(DeviceUnavailableError, match="no answer within 0.5 s"):
            runner.reopen("x")
    finally:
        release.set()


# -- item 3: the command line against a deaf server or tracker exits 1 at once ----------------
@pytest.fixture
def no_import(monkeypatch, tmp_path):
    def boom(**kw):
        raise AssertionError("the model was imported: the deaf device was not found")

    monkeypatch.setattr(tvm_sched.tune, "load_model", boom)
    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.delenv("TVM_TRACKER_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("where", ["--rpc-server", "--rpc-tracker"])
@pytest.mark.parametrize("lanes", [[], ["--lanes", "2"]])
def test_tune_against_a_deaf_device_exits_1_with_one_line(where, lanes, deaf_port, no_import,
                                                          tmp_path, capsys):
    argv = ["tune", "--model", "inception", where, f"127.0.0.1:{deaf_port}", *lanes,
            "--work-dir", str(tmp_path / "w")]
    if where == "--rpc-tracker":
        argv += ["--rpc-key", "cpu"]
    finished, code = bounded(lambda: main(argv), 60)
    assert finished, "tvm-sched tune hangs on a deaf device"
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "handshake" in err and "Traceback" not in err


def test_a_tracker_that_hands_out_a_deaf_server_is_an_error_in_time():
    pytest.importorskip("tornado")
    from tvm.rpc.tracker import Tracker

    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9390, silent=True)
    server = None
    try:
        server = EmbeddedServer(tracker=("127.0.0.1", tracker.port), key="deaf-test",
                                lifetime=300).start()
        runner = TrackerDevices(("127.0.0.1", tracker.port), "deaf-test", wait=30,
                               connect_timeout=3)
        runner.check()
        deadline = time.monotonic() + 30
        while runner.free_devices() < 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # the server registers with the tracker
        os.kill(server.pid, signal.SIGSTOP)
        finished, err = bounded(runner.open, 60)
        assert finished, "the tracker request blocked"
        assert isinstance(err, DeviceUnavailableError), err
        assert "gave no 'deaf-test' device: no answer within 3 s" in str(err)
        runner.close()
    finally:
        if server is not None:
            server.stop()
        tracker.terminate()


# -- item 9: a server never outlives its parent -----------------------------------------------
LAUNCHER = ("import sys, time\n"
            "from tvm_sched.tune.server import EmbeddedServer\n"
            "s = EmbeddedServer(lifetime=600).launch()\n"
            "print(s.pid, s._root, flush=True)\n"
            "if sys.argv[1] == 'ready':\n"
            "    s.wait_ready(); print('ready', flush=True)\n"
            "time.sleep(600)\n")


@pytest.mark.parametrize("when", ["starting", "ready"])
def test_a_server_whose_parent_is_killed_ends(when):
    parent = subprocess.Popen([sys.executable, "-c", LAUNCHER, when], stdout=subprocess.PIPE,
                              text=True)
    server_pid = None
    try:
        pid, root = parent.stdout.readline().split()
        server_pid = int(pid)
        if when == "ready":
            assert parent.stdout.readline().strip() == "ready"
        parent.kill()  # SIGKILL: no clean-up of any kind in the parent
        parent.wait(10)
        assert gone(server_pid, 30), "the server outlived its parent"
        assert not os.path.exists(root)  # its session directories went with it
    finally:
        kill_quietly(parent.pid)
        parent.wait(10)
        kill_quietly(server_pid, group=True)


def test_a_server_launched_from_a_thread_that_ends_keeps_serving():
    """Linux signals a child when the *thread* that made it ends; the server tells that apart
    from its parent process ending."""
    server = EmbeddedServer(lifetime=300)
    try:
        t = threading.Thread(target=server.start)
        t.start()
        t.join(120)
        time.sleep(1.0)  # the signal of the ended thread has arrived
        assert server.alive()
        check_answers(*server.address, "the RPC server", "connect to")
    finally:
        server.stop()


# -- item 14: no session process outlives its server ------------------------------------------
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_standalone_servers_session_forks_end_with_it(how, tmp_path):
    from tvm import rpc

    env = dict(os.environ, **{FAULTS_ENV: "1"})
    server = subprocess.Popen([sys.executable, "-m", "tvm_sched.tune.server", "--port",
                               str(free_port()), "--lifetime", "300", "--root",
                               str(tmp_path / "sessions")], env=env,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    fork = None
    try:
        line = server.stdout.readline()
        assert line.startswith(READY), line
        sess = rpc.connect("127.0.0.1", int(line[len(READY):]))
        fork = fault(sess, "pid")
        # a session that spins in a "kernel" and ignores SIGTERM
        hang_in_background(sess)
        time.sleep(0.5)
        os.kill(server.pid, how)  # the server only, not its process group
        server.wait(20)
        assert gone(fork, 20), "the session fork outlived its server"
        # a clean end removes the session directories; SIGKILL leaves them to the launcher
        assert (tmp_path / "sessions").exists() == (how == signal.SIGKILL)
    finally:
        kill_quietly(server.pid, group=True)
        server.wait(10)
        kill_quietly(fork)

"""The embedded RPC server: TVM's RPC serving on 127.0.0.1 in a subprocess of bounded lifetime.

Run as ``python -m tvm_sched.tune.server [--port P] [--lifetime S] [--tracker HOST:PORT --key K]
[--parent PID] [--root DIR]`` it starts the server, prints ``tvm_sched-rpc-server port=N`` on
stdout and serves until its lifetime is over, its parent process is gone, or it receives
SIGTERM. :class:`EmbeddedServer` starts it in a new session (process group) and ends the whole
group by the child's pid.

Contract
--------
- **One session at a time, each in a fork.** TVM's own listening loop
  (``tvm.rpc.server._listen_loop``: handshake, tracker registration, one forked process per
  session) runs in a daemon thread of this process, not in the extra worker process
  ``rpc.Server`` starts (which imports TVM a second time and outlives a parent killed without
  clean-up).
- **A crashing session does not make the server deaf.** When a session fork dies (a kernel's
  SIGSEGV or SIGBUS, ``os._exit``), TVM's loop raises out of its thread; this server logs one
  line, leaves and removes the dead session's work directory, closes its connection (the client
  sees the loss at once) and runs the loop again on the same socket.
- **Nothing outlives the server.** The server asks Linux for a signal when its parent ends
  (``PR_SET_PDEATHSIG``; a parent that ended before it asked is caught by ``--parent``), polls
  its parent and its lifetime, and ends on a failed ready line (a parent gone before reading
  it); every process it forks (the session forks) gets SIGKILL when the server ends, however
  it ends, and is killed explicitly on a clean exit (SIGTERM, lifetime, parent gone). All its
  session directories live under one root directory, removed on exit (and by
  :meth:`EmbeddedServer.stop`, which made it, even after a SIGKILL).
- **Fault injection for tests.** With ``TVM_SCHED_TEST_FAULTS=1`` in its environment the server
  registers ``tvm_sched.testing.fault(kind)`` (see :func:`_register_faults`); never otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import NoReturn

from tvm_sched.errors import DeviceUnavailableError, one_line

__all__ = ["EmbeddedServer", "free_port", "main", "FAULTS_ENV", "FAULT_FUNC"]

log = logging.getLogger(__name__)

READY = "tvm_sched-rpc-server port="
HOST = "127.0.0.1"
#: Environment variable that makes the server register :data:`FAULT_FUNC` (tests only).
FAULTS_ENV = "TVM_SCHED_TEST_FAULTS"
#: The fault-injection function's global name.
FAULT_FUNC = "tvm_sched.testing.fault"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Returns
    -------
    int
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class EmbeddedServer:
    """A bounded-lifetime RPC server on 127.0.0.1, started and ended by pid.

    Parameters
    ----------
    lifetime
        Seconds after which the server ends itself even if nobody stops it.
    tracker
        ``(host, port)`` of a tracker to register with (``key`` names the device kind).
    key
        Device key on the tracker.
    start_timeout
        Seconds the server may take from its launch to listening.
    """

    def __init__(self, *, lifetime: float = 3600.0, tracker: tuple[str, int] | None = None,
                 key: str = "", start_timeout: float = 60.0):
        self.lifetime = lifetime
        self.tracker = tracker
        self.key = key
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._launched = 0.0
        self._root: str | None = None  # the server's session directories, removed by stop

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError("the embedded server is not running")
        return HOST, self.port

    def alive(self) -> bool:
        """Whether the server process runs.

        Returns
        -------
        bool
            True between a launch and the process's end.
        """
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> EmbeddedServer:
        """Launch and wait until the server listens (:meth:`wait_ready`).

        Returns
        -------
        EmbeddedServer
            This server.

        Raises
        ------
        DeviceUnavailableError
            As :meth:`wait_ready`.
        """
        return self.launch().wait_ready()

    def launch(self) -> EmbeddedServer:
        """Start the process without waiting (:meth:`wait_ready` waits); lets the server import
        TVM while the caller does other work.

        Returns
        -------
        EmbeddedServer
            This server.
        """
        if self.proc is not None:
            return self
        port = free_port()
        self._root = tempfile.mkdtemp(prefix="tvm_sched_rpc_")
        cmd = [sys.executable, "-m", "tvm_sched.tune.server", "--port", str(port),
               "--lifetime", str(self.lifetime), "--parent", str(os.getpid()),
               "--root", self._root]
        if self.tracker is not None:
            cmd += ["--tracker", f"{self.tracker[0]}:{self.tracker[1]}", "--key", self.key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, text=True)
        self._launched = time.monotonic()
        return self

    def wait_ready(self) -> EmbeddedServer:
        """Wait for the ready line.

        Returns
        -------
        EmbeddedServer
            This server.

        Raises
        ------
        DeviceUnavailableError
            No ready line within ``start_timeout`` seconds of the launch (the server is
            stopped).
        """
        if self.port is not None:
            return self
        if self.proc is None:
            self.launch()
        # counted from the launch (the server imports TVM while the caller builds), but the
        # ready line is always read: a caller that comes back after a long build finds a
        # server that has long been listening, and one still starting gets a few seconds more
        deadline = max(self._launched + self.start_timeout, time.monotonic() + 5.0)
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(READY) or not line:
                    break
            if self.proc.poll() is not None:
                break
        if not line.startswith(READY):
            self.stop()
            raise DeviceUnavailableError(f"the embedded RPC server did not start within "
                                         f"{self.start_timeout:.0f} s")
        self.port = int(line[len(READY):].strip())
        log.info("embedded RPC server pid %d on %s:%d", self.proc.pid, HOST, self.port)
        return self

    def stop(self) -> None:
        """End the server's process group (SIGTERM, then SIGKILL after 5 s) and remove its
        session directories (also those of a server that was killed)."""
        if self.proc is None:
            return
        pid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
                os.killpg(pid, signal.SIGCONT)  # a stopped server handles SIGTERM only then
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                # the group may outlive its leader by a moment: end what is left
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            except subprocess.TimeoutExpired:
                continue
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self.proc = None
        self.port = None
        self._root = None

    def restart(self) -> EmbeddedServer:
        """Stop the server and start a new one (on a new port).

        Returns
        -------
        EmbeddedServer
            This server.

        Raises
        ------
        DeviceUnavailableError
            As :meth:`wait_ready`.
        """
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# the server process
def _set_pdeathsig(prctl, sig: int) -> bool:
    """Linux: the kernel sends ``sig`` to this process when the thread that made it ends."""
    try:
        return prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(int(sig)), ctypes.c_ulong(0),
                     ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
    except (OSError, TypeError):
        return False


def _prctl():
    """libc's ``prctl``, or ``None`` where there is none (not Linux)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


class _Life:
    """How this server process ends: at once, its forks killed and its directories removed."""

    def __init__(self, parent: int, root: str | None):
        self.pid = os.getpid()
        self.parent = parent
        self.home = os.getcwd()
        self.root = root

    def exit(self, code: int = 0) -> NoReturn:
        if os.getpid() != self.pid:  # a session fork that inherited a handler
            os._exit(code)
        try:
            import psutil

            for child in psutil.Process().children(recursive=True):
                try:
                    child.kill()
                except psutil.Error:
                    pass
        except ImportError:  # the forks still get their SIGKILL from the kernel
            pass
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        # the listening thread never returns: leave without waiting for it
        os._exit(code)

    def watch_parent(self, prctl) -> None:
        """End when the parent process ends, at any moment (see the module docstring)."""
        def on_pdeath(*_):
            if os.getppid() != self.parent:  # not a thread of the parent that ended
                self.exit(0)

        signal.signal(signal.SIGTERM, lambda *_: self.exit(0))
        signal.signal(signal.SIGUSR1, on_pdeath)
        if prctl is not None:
            _set_pdeathsig(prctl, signal.SIGUSR1)
        if os.getppid() != self.parent:  # it ended before we asked
            self.exit(0)

    def forks_die_with_me(self, prctl) -> None:
        """Every process forked from now on gets SIGKILL when its forker ends (Linux), and ends
        at once if its forker has already gone."""
        if prctl is None:
            return
        forker = [0]

        def before() -> None:
            forker[0] = os.getpid()

        def in_child() -> None:
            _set_pdeathsig(prctl, signal.SIGKILL)
            if os.getppid() != forker[0]:
                os._exit(0)

        os.register_at_fork(before=before, after_in_child=in_child)

    def leave_session_dir(self) -> None:
        """Back home after a session that died (TVM's loop left us in its work directory);
        that directory is removed."""
        try:
            here = os.getcwd()
        except FileNotFoundError:
            here = None
        with contextlib.suppress(OSError):
            os.chdir(self.home)
        if here and self.root and here.startswith(self.root + os.sep):
            shutil.rmtree(here, ignore_errors=True)


def _bind(port: int, port_end: int) -> socket.socket:
    """A listening socket on the first free port of ``[port, port_end)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for p in range(port, port_end):
        try:
            sock.bind((HOST, p))
            sock.listen(8)
            return sock
        except OSError:
            continue
    sock.close()
    raise OSError(f"no free port in [{port}, {port_end}) on {HOST}")


def _serve(listen_loop, sock: socket.socket, key: str, tracker, life: _Life) -> None:
    """TVM's listening loop, run again whenever it raises (a session fork died)."""
    port = sock.getsockname()[1]
    while True:
        try:
            listen_loop(sock, port, key, tracker, None, None)
        except Exception as err:  # noqa: BLE001 - e.g. "Child process ... exited unsuccessfully"
            log.warning("RPC session ended abnormally (%s); listening again", one_line(err))
        # the dead session's frames held its connection: free them so the client sees the end
        gc.collect()
        life.leave_session_dir()
        time.sleep(0.05)


def _register_faults() -> None:
    """Register :data:`FAULT_FUNC` ``(kind)``, run in the session fork: ``"pid"`` returns its
    pid; a signal name (``"SIGSEGV"``, ``"SIGBUS"``) kills it with that signal; ``"exit"``
    ends it with ``os._exit(3)``; ``"hang"`` blocks SIGTERM and sleeps for good (a kernel
    that spins)."""
    import tvm_ffi

    def fault(kind: str) -> int:
        if kind == "pid":
            return os.getpid()
        if kind == "exit":
            os._exit(3)
        if kind == "hang":
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
            while True:
                time.sleep(3600)
        os.kill(os.getpid(), getattr(signal, kind))
        time.sleep(5)  # the signal arrives first
        return -1

    tvm_ffi.register_global_func(FAULT_FUNC, fault, override=True)


def _start(args: argparse.Namespace, life: _Life, prctl) -> int:
    """Register our functions, bind, start serving; the port."""
    from tvm.rpc.server import _listen_loop  # here: answering when the ready line is out

    from tvm_sched.runtime.rpc import register as register_lane_functions

    register_lane_functions()  # tvm_sched.runtime.num_cores / run_exported / time_step / ...
    from tvm_sched.tune.anchors import register as register_anchors

    register_anchors()  # PyTorch and ONNX Runtime timed beside the VM (tune/anchors.py)
    if os.environ.get(FAULTS_ENV) == "1":
        _register_faults()
    logging.getLogger("RPCServer").setLevel(logging.ERROR)  # TVM's per-session info lines
    tracker = None
    if args.tracker:
        host, port = args.tracker.rsplit(":", 1)
        tracker = (host, int(port))
    if life.root is None:
        life.root = tempfile.mkdtemp(prefix="tvm_sched_rpc_")
    os.makedirs(life.root, exist_ok=True)
    tempfile.tempdir = life.root  # TVM's session work directories go under it
    life.forks_die_with_me(prctl)
    sock = _bind(args.port, args.port_end or args.port + 100)
    threading.Thread(target=_serve, args=(_listen_loop, sock, args.key, tracker, life), daemon=True,
                     name="tvm-sched-rpc-listen").start()
    return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    """Run the server process (``python -m tvm_sched.tune.server``).

    Prints the ready line with its port, then serves until its lifetime ends or its parent is
    gone.

    Parameters
    ----------
    argv
        The command line without the program name; ``None``: ``sys.argv[1:]``.

    Returns
    -------
    int
        Never returns normally: the process exits with 0 at the end of its lifetime, 1 after
        an error (printed as one line on stderr).
    """
    ap = argparse.ArgumentParser(prog="python -m tvm_sched.tune.server")
    ap.add_argument("--port", type=int, default=9090)
    ap.add_argument("--port-end", type=int, default=None)
    ap.add_argument("--lifetime", type=float, default=3600.0)
    ap.add_argument("--tracker", default=None, help="HOST:PORT of a tracker to register with")
    ap.add_argument("--key", default="")
    ap.add_argument("--parent", type=int, default=None,
                    help="pid of the process whose end ends the server (default: the parent)")
    ap.add_argument("--root", default=None,
                    help="directory for the session directories (default: a new temporary one;"
                         " removed on exit either way)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # TVM sizes each thread's CPU pool once, when that thread first runs a kernel, to at most
    # TVM_NUM_THREADS (default: half the x86 cores; it assumes hyper-threads); later
    # runtime.config_threadpool calls can only shrink it. The tuner sizes every pool itself
    # (the VM's to all cores, a lane's to its threads, kernel tuning's to the threads it tunes
    # for), so the cap is every core this server may use -- not a value inherited from the
    # process that started it (a benchmark that set TVM_NUM_THREADS=1 for itself had its
    # "all-core" VM anchor and its 2-thread kernel tuning run on one thread). ``taskset``
    # limits the cores.
    from tvm_sched.runtime.cores import num_cores

    os.environ["TVM_NUM_THREADS"] = str(num_cores())
    life = _Life(args.parent or os.getppid(), args.root)
    prctl = _prctl()
    life.watch_parent(prctl)
    code = 1
    try:
        port = _start(args, life, prctl)
        try:
            print(f"{READY}{port}", flush=True)
        except OSError:  # the parent is gone before reading it
            life.exit(1)
        deadline = time.monotonic() + args.lifetime
        while time.monotonic() < deadline and os.getppid() == life.parent:
            time.sleep(0.2)
        code = 0
    except Exception as err:  # noqa: BLE001 - one line, then the same clean end
        with contextlib.suppress(Exception):
            print(f"tvm_sched RPC server: {one_line(err, with_type=True)}", file=sys.stderr)
    finally:  # whatever happened, the process ends here (never kept up by its threads)
        life.exit(code)

if __name__ == "__main__":
    sys.exit(main())

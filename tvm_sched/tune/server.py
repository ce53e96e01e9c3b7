"""The embedded RPC server: TVM's ``rpc.Server`` on 127.0.0.1 in a subprocess of bounded lifetime.

Run as ``python -m tvm_sched.tune.server [--port P] [--lifetime S] [--tracker HOST:PORT --key K]``
it starts the server, prints ``tvm_sched-rpc-server port=N`` on stdout and serves until its
lifetime is over, its parent process is gone, or it receives SIGTERM. :class:`EmbeddedServer`
starts it in a new session (process group) and ends the whole group by the child's pid, so the
server's own worker processes go with it.

TVM's ``rpc.Server`` runs its listening loop in yet another worker process (which imports TVM a
second time, seconds on a loaded machine) and that worker outlives a parent killed without
clean-up. This wrapper runs TVM's listening loop in its own process instead
(``tvm.rpc.server.PopenRPCServerState``, what ``rpc.Server``'s worker runs; ``rpc.Server`` is the
fallback if that class changes), bounds its life and owns the process group. Each RPC session is
still served in a process forked per connection, as TVM does, so a crashing candidate takes down
that fork, not the server.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time

__all__ = ["EmbeddedServer", "free_port", "main"]

log = logging.getLogger(__name__)

READY = "tvm_sched-rpc-server port="
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
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

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError("the embedded server is not running")
        return HOST, self.port

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> EmbeddedServer:
        """Launch and wait until the server listens."""
        return self.launch().wait_ready()

    def launch(self) -> EmbeddedServer:
        """Start the process without waiting (:meth:`wait_ready` waits); lets the server import
        TVM while the caller does other work."""
        if self.proc is not None:
            return self
        port = free_port()
        cmd = [sys.executable, "-m", "tvm_sched.tune.server", "--port", str(port),
               "--lifetime", str(self.lifetime)]
        if self.tracker is not None:
            cmd += ["--tracker", f"{self.tracker[0]}:{self.tracker[1]}", "--key", self.key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, text=True)
        self._launched = time.monotonic()
        return self

    def wait_ready(self) -> EmbeddedServer:
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
            raise RuntimeError(f"the embedded RPC server did not start within "
                               f"{self.start_timeout:.0f} s")
        self.port = int(line[len(READY):].strip())
        log.info("embedded RPC server pid %d on %s:%d", self.proc.pid, HOST, self.port)
        return self

    def stop(self) -> None:
        """End the server's process group (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc is None:
            return
        pid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
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
        self.proc = None
        self.port = None

    def restart(self) -> EmbeddedServer:
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tvm_sched.tune.server")
    ap.add_argument("--port", type=int, default=9090)
    ap.add_argument("--port-end", type=int, default=None)
    ap.add_argument("--lifetime", type=float, default=3600.0)
    ap.add_argument("--tracker", default=None, help="HOST:PORT of a tracker to register with")
    ap.add_argument("--key", default="")
    args = ap.parse_args(argv)
    from tvm import rpc

    from tvm_sched.runtime.rpc import register as register_lane_runtime

    register_lane_runtime()  # tvm_sched.runtime.time_exported / run_exported for clients
    from tvm_sched.tune.lane_remote import register as register_lane_tuning

    register_lane_tuning()  # tvm_sched.tune.num_cores / lane_run / lane_time / lane_profile

    tracker = None
    if args.tracker:
        host, port = args.tracker.rsplit(":", 1)
        tracker = (host, int(port))
    port_end = args.port_end or args.port + 100
    server = None
    try:
        from tvm.rpc.server import PopenRPCServerState

        state = PopenRPCServerState(HOST, args.port, port_end, tracker_addr=tracker,
                                    key=args.key, silent=True)
        port = state.port
    except (ImportError, TypeError):  # TVM changed its internals: its own worker process
        server = rpc.Server(host=HOST, port=args.port, port_end=port_end, tracker_addr=tracker,
                            key=args.key, silent=True)
        port = server.port
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print(f"{READY}{port}", flush=True)
    parent = os.getppid()
    deadline = time.monotonic() + args.lifetime
    try:
        while not stop and time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(0.2)
    finally:
        if server is not None:
            server.terminate()
    # the listening thread never returns: leave without waiting for it (the parent ends the
    # process group, which holds the per-session forks)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

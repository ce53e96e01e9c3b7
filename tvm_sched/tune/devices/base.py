"""The device-source interface (:class:`Devices`: hands out RPC sessions, one per device) and the
helpers every source shares. One source per module in this package; :func:`create_devices` in
:mod:`tvm_sched.tune.devices` makes one by kind.

Deadlines
---------
Nothing on the device path may wait without a deadline: a server that accepts TCP connections
(its listen backlog does that for it) but never answers would otherwise block a tuner for good.
:func:`check_answers` is the one health check of every device source: it opens a TCP connection and
performs TVM's RPC handshake (or the tracker's) under a socket timeout.
:func:`call_with_deadline` runs a call that TVM gives no timeout (``rpc.connect``, a tracker's
``request``) in a daemon thread joined with a deadline; what such a call returns after its
deadline is handed to a clean-up function instead of being lost open.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from tvm_sched.errors import DeviceUnavailableError, TuneInputError, one_line

__all__ = ["Devices", "parse_address", "check_answers", "call_with_deadline",
           "CONNECT_TIMEOUT_S", "CHECK_TIMEOUT_S"]

#: Default deadline of one connect (``rpc.connect``, a tracker request), seconds.
CONNECT_TIMEOUT_S = 30.0
#: Default deadline of the handshake health check, seconds.
CHECK_TIMEOUT_S = 3.0

# TVM's RPC protocol (tvm/rpc/base.py): a client sends RPC_MAGIC, a key length and
# "client:<key>"; a server answers one of three codes. A tracker echoes its own magic.
_RPC_MAGIC = 0xFF271
_RPC_CODES = {_RPC_MAGIC + 0, _RPC_MAGIC + 1, _RPC_MAGIC + 2}  # success, duplicate, mismatch
_TRACKER_MAGIC = 0x2F271
# a key no server is started with: the server answers "mismatch" and goes on listening, so the
# check starts no session (a server serves one session at a time)
_PROBE_KEY = b"client:tvm_sched-health-check"


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``, or a :class:`TuneInputError` naming ``what``.

    Parameters
    ----------
    text
        The address.
    what
        The option it came from, for the message (e.g. ``"--rpc-server"``).

    Returns
    -------
    tuple
        ``(host, port)``.

    Raises
    ------
    TuneInputError
        No ``:``, an empty host, or a port that is not an integer in 1..65535.

    Examples
    --------
    >>> parse_address("127.0.0.1:9190", "--rpc-server")
    ('127.0.0.1', 9190)
    """
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TuneInputError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def _recv_exact(sock: socket.socket, nbytes: int, deadline: float) -> bytes:
    data = b""
    while len(data) < nbytes:
        sock.settimeout(max(deadline - time.monotonic(), 1e-3))
        chunk = sock.recv(nbytes - len(data))
        if not chunk:
            raise ConnectionResetError("connection closed during the handshake")
        data += chunk
    return data


def check_answers(host: str, port: int, what: str, verb: str, *, tracker: bool = False,
                  timeout: float = CHECK_TIMEOUT_S) -> float:
    """The RPC server (or tracker) at ``host:port`` answers TVM's handshake within ``timeout``.

    A server is sent TVM's client greeting with a key no server uses: it answers
    "mismatch" and goes on listening, so no session is started. A tracker is sent its magic
    number and must echo it. Either way the connection is closed again.

    Parameters
    ----------
    host, port
        Where.
    what, verb
        Words of the error message (``"cannot {verb} {what} at host:port: ..."``).
    tracker
        Speak the tracker's handshake instead of a server's.
    timeout
        Seconds for the whole check (connect, send, answer).

    Returns
    -------
    float
        Seconds the check took.

    Raises
    ------
    DeviceUnavailableError
        The connection is refused, or nothing (or not TVM's protocol) answers within
        ``timeout`` seconds; the message is one line.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    where = f"cannot {verb} {what} at {host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            if tracker:
                sock.sendall(struct.pack("<i", _TRACKER_MAGIC))
            else:
                sock.sendall(struct.pack("<ii", _RPC_MAGIC, len(_PROBE_KEY)) + _PROBE_KEY)
            (code,) = struct.unpack("<i", _recv_exact(sock, 4, deadline))
    except TimeoutError:
        why = "it hangs" if tracker else "it hangs, or serves another session"
        raise DeviceUnavailableError(
            f"{where}: no answer to the {'tracker' if tracker else 'RPC'} handshake within "
            f"{timeout:g} s ({why})") from None
    except OSError as err:
        raise DeviceUnavailableError(f"{where}: {err.strerror or err}") from None
    ok = code == _TRACKER_MAGIC if tracker else code in _RPC_CODES
    if not ok:
        raise DeviceUnavailableError(f"{where}: it does not speak TVM's "
                                     f"{'tracker' if tracker else 'RPC'} protocol")
    return time.monotonic() - t0


def call_with_deadline(fn: Callable[[], Any], timeout: float, what: str, *,
                       on_timeout: Callable[[], None] | None = None,
                       discard: Callable[[Any], None] | None = None) -> Any:
    """``fn()`` in a daemon thread, waited for at most ``timeout`` seconds.

    Parameters
    ----------
    fn
        A call that TVM gives no timeout of its own.
    timeout
        Seconds to wait.
    what
        The start of the error message (``"cannot connect to ... at host:port"``).
    on_timeout
        Called (in this thread) when the deadline passes, e.g. to close a socket ``fn`` waits on.
    discard
        Gets what ``fn`` returns after its deadline (e.g. a session to close).

    Returns
    -------
    Any
        What ``fn`` returned.

    Raises
    ------
    DeviceUnavailableError
        ``fn`` did not return within ``timeout`` seconds, or raised (the cause on one line).
    """
    lock = threading.Lock()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            value = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            with lock:
                box["error"] = err
            return
        with lock:
            late = "late" in box
            if not late:
                box["value"] = value
        if late and discard is not None:
            discard(value)

    worker = threading.Thread(target=run, name="tvm-sched-deadline", daemon=True)
    worker.start()
    worker.join(timeout)
    with lock:
        if "value" not in box and "error" not in box:
            box["late"] = True
    if "late" in box:
        if on_timeout is not None:
            on_timeout()
        raise DeviceUnavailableError(f"{what}: no answer within {timeout:g} s")
    if "error" in box:
        raise DeviceUnavailableError(
            f"{what}: {one_line(box['error'], last=True, limit=200)}") from None
    return box["value"]


class Devices:
    """Hands out RPC sessions, one per device."""

    #: Device key stored in records (same key = comparable measurements).
    key: str = "local"

    def check(self) -> None:
        """Fail fast when the devices cannot be reached at all (called before any work).

        Raises
        ------
        DeviceUnavailableError
            The server or tracker does not answer TVM's handshake.
        """

    def prepare(self) -> None:
        """Start slow things early (the tuner calls this before proposing and building)."""

    def open(self) -> list[tuple[str, Any]]:
        """``(device name, rpc session)`` for every device to use.

        Returns
        -------
        list of tuple
            One ``(name, session)`` per device.
        """
        raise NotImplementedError

    def reopen(self, name: str) -> Any:
        """A new session to device ``name`` after its session was lost (one try, within a
        deadline).

        Parameters
        ----------
        name
            The device's name, as :meth:`open` gave it.

        Returns
        -------
        Any
            The new RPC session.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`open` started."""

    def __enter__(self) -> Devices:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

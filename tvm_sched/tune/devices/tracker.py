"""``kind="tracker"``: :class:`TrackerDevices`, every free device of a key on an RPC tracker (one
session each); waits, showing the tracker's queue, up to a timeout when none is free.

Every exchange with the tracker has a deadline: :meth:`TrackerDevices.check` is the tracker's
handshake under a socket timeout; connecting, the queue summary and each request (which also
connects to the server the tracker hands out) run under
:func:`~tvm_sched.tune.devices.base.call_with_deadline`, and the tracker connection is closed
when one runs past it (a session that arrives later is dropped).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from tvm import rpc

from tvm_sched.errors import DeviceUnavailableError, TuneInputError
from tvm_sched.tune.devices.base import (
    CHECK_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    Devices,
    call_with_deadline,
    check_answers,
    parse_address,
)

__all__ = ["TrackerDevices"]

log = logging.getLogger(__name__)


class TrackerDevices(Devices):
    """Every free device of ``key`` on the tracker at ``host:port``.

    Parameters
    ----------
    address
        The tracker, ``"host:port"`` or ``(host, port)``.
    key
        Device key on the tracker.
    wait
        Seconds to wait for ``min_devices`` free devices.
    min_devices, max_devices
        How many free devices to wait for, and to use at most.
    status
        Gets a line of progress while waiting.
    connect_timeout
        Deadline of connecting to the tracker, of one request (tracker and server) and of one
        query, seconds.
    check_timeout
        Deadline of the handshake check, seconds.

    Raises
    ------
    TuneInputError
        No key.
    """

    def __init__(self, address: str | tuple[str, int], key: str, *, wait: float = 60.0,
                 min_devices: int = 1, max_devices: int | None = None,
                 status: Callable[[str], None] | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 check_timeout: float = CHECK_TIMEOUT_S):
        if not key:
            raise TuneInputError("a tracker needs a device key (--rpc-key or TVM_TRACKER_KEY)")
        self.host, self.port = (parse_address(address, "--rpc-tracker")
                                if isinstance(address, str) else address)
        self.key = key
        self.wait = wait
        self.min_devices = max(1, int(min_devices))
        self.max_devices = max_devices
        self.status = status or (lambda text: log.info("%s", text))
        self.connect_timeout = connect_timeout
        self.check_timeout = check_timeout
        self._tracker = None
        self._lock = threading.RLock()  # one tracker connection, devices reopen from threads

    def check(self) -> None:
        """The tracker answers its handshake within ``check_timeout`` seconds.

        Raises
        ------
        DeviceUnavailableError
            It refuses the connection, or accepts it and does not answer in time.
        """
        check_answers(self.host, self.port, "the RPC tracker", "reach", tracker=True,
                      timeout=self.check_timeout)

    def _client(self):
        if self._tracker is not None and getattr(self._tracker, "_sock", True) is None:
            self._tracker = None  # closed by TVM after a failed request: connect again
        if self._tracker is None:
            host, port = self.host, self.port
            self._tracker = call_with_deadline(
                lambda: rpc.connect_tracker(host, port), self.connect_timeout,
                f"cannot reach the RPC tracker at {host}:{port}", discard=_close)
        return self._tracker

    def _ask(self, fn, what: str):
        """``fn(tracker)`` within ``connect_timeout``; past it the connection is closed (which
        also wakes the waiting call) and a new one is made next time."""
        with self._lock:
            tracker = self._client()

            def drop() -> None:
                _close(tracker)
                self._tracker = None

            return call_with_deadline(lambda: fn(tracker), self.connect_timeout, what,
                                      on_timeout=drop, discard=_close_session)

    def free_devices(self) -> int:
        """How many devices of the key are free now, as the tracker says.

        Returns
        -------
        int
            The tracker's free count for ``key`` (0 when it lists none).
        """
        summary = self._ask(lambda t: t.summary(),
                            f"the RPC tracker at {self.host}:{self.port} gave no queue summary")
        info = summary.get("queue_info", {})
        return int(info.get(self.key, {}).get("free", 0))

    def _wait_free(self, need: int = 1) -> int:
        t0 = time.monotonic()
        last = -1.0
        while True:
            free = self.free_devices()
            if free >= need:
                return free
            waited = time.monotonic() - t0
            if waited >= self.wait:
                what = "free device" if need == 1 else f"{need} free devices ({free} free)"
                raise DeviceUnavailableError(
                    f"no {what} with key {self.key!r} on the tracker at "
                    f"{self.host}:{self.port} after {self.wait:.0f} s")
            if waited - last >= 5 or last < 0:
                self.status(f"waiting for a free {self.key!r} device on {self.host}:{self.port}"
                            f" ({free}/{need} free, {waited:.0f}/{self.wait:.0f} s)")
                last = waited
            time.sleep(min(1.0, self.wait - waited))

    def _request(self):
        # one try: TVM's retries reconnect without any deadline
        return self._ask(lambda t: t.request(self.key, priority=1, session_timeout=0,
                                             max_retry=1),
                         f"the tracker at {self.host}:{self.port} gave no {self.key!r} device")

    def open(self):
        free = self._wait_free(self.min_devices)
        if self.max_devices:
            free = min(free, self.max_devices)
        return [(f"{self.key}#{i}", self._request()) for i in range(free)]

    def reopen(self, name):
        """A new session, as :meth:`Devices.reopen <tvm_sched.tune.devices.base.Devices.reopen>`.

        Parameters
        ----------
        name
            The device's name.
        """
        self._wait_free()
        return self._request()

    def close(self):
        with self._lock:
            if self._tracker is not None:
                _close(self._tracker)
                self._tracker = None


def _close(tracker) -> None:
    """Close a tracker connection; ``shutdown`` first wakes a thread blocked reading it (a
    plain ``close`` does not)."""
    sock = getattr(tracker, "_sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    tracker.close()


def _close_session(value) -> None:
    """What a tracker call returned after its deadline: a session is dropped (which closes
    it), a summary ignored."""
    del value

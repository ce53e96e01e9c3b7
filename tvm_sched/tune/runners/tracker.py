"""``kind="tracker"``: :class:`TrackerRunner`, every free device of a key on an RPC tracker (one
session each); waits, showing the tracker's queue, up to a timeout when none is free."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tvm import rpc

from tvm_sched.errors import DeviceUnavailableError, TuneInputError
from tvm_sched.tune.runners.base import Runner, parse_address, reachable

__all__ = ["TrackerRunner"]

log = logging.getLogger(__name__)


class TrackerRunner(Runner):
    """Every free device of ``key`` on the tracker at ``host:port``."""

    def __init__(self, address: str | tuple[str, int], key: str, *, wait: float = 60.0,
                 min_devices: int = 1, max_devices: int | None = None,
                 status: Callable[[str], None] | None = None):
        if not key:
            raise TuneInputError("a tracker needs a device key (--rpc-key or TVM_TRACKER_KEY)")
        self.host, self.port = (parse_address(address, "--rpc-tracker")
                                if isinstance(address, str) else address)
        self.key = key
        self.wait = wait
        self.min_devices = max(1, int(min_devices))
        self.max_devices = max_devices
        self.status = status or (lambda text: log.info("%s", text))
        self._tracker = None

    def check(self) -> None:
        reachable(self.host, self.port, "the RPC tracker", "reach")

    def _client(self):
        if self._tracker is None:
            try:
                self._tracker = rpc.connect_tracker(self.host, self.port)
            except Exception as err:  # noqa: BLE001
                raise DeviceUnavailableError(
                    f"cannot reach the RPC tracker at {self.host}:{self.port}: {err}") from None
        return self._tracker

    def free_devices(self) -> int:
        info = self._client().summary().get("queue_info", {})
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
        try:
            return self._client().request(self.key, priority=1, session_timeout=0)
        except Exception as err:  # noqa: BLE001
            raise DeviceUnavailableError(
                f"the tracker at {self.host}:{self.port} gave no {self.key!r} device: {err}"
            ) from None

    def open(self):
        free = self._wait_free(self.min_devices)
        if self.max_devices:
            free = min(free, self.max_devices)
        return [(f"{self.key}#{i}", self._request()) for i in range(free)]

    def reopen(self, name):
        self._wait_free()
        return self._request()

"""``kind="embedded"`` (the default): :class:`EmbeddedRunner`, an RPC server of our own on
127.0.0.1 (:class:`~tvm_sched.tune.server.EmbeddedServer`), started by :meth:`prepare` before the
slow work so its start-up overlaps it, restarted once per loss."""

from __future__ import annotations

import logging

from tvm_sched.errors import DeviceUnavailableError
from tvm_sched.tune.runners.server import ServerRunner
from tvm_sched.tune.server import EmbeddedServer

__all__ = ["EmbeddedRunner"]

log = logging.getLogger(__name__)


class EmbeddedRunner(ServerRunner):
    """The default: an RPC server of our own on 127.0.0.1, restarted once per loss."""

    def __init__(self, *, lifetime: float = 3600.0):
        self.server = EmbeddedServer(lifetime=lifetime)
        self.key = "local"
        self.session_timeout = 0
        self.host, self.port = "127.0.0.1", None

    def check(self) -> None:
        """Nothing to reach yet: the server is started by :meth:`prepare`."""

    def prepare(self) -> None:
        if not self.server.alive():
            self.server.launch()

    def open(self):
        if not self.server.alive():
            self.server.stop()
            self.server.launch()
        self.server.wait_ready()
        self.host, self.port = self.server.address
        return [("embedded", self._connect())]

    def reopen(self, name):
        if self.server.alive():
            try:
                return self._connect()
            except DeviceUnavailableError:
                pass  # alive but not answering (or dying right now): restart it
        log.warning("the embedded RPC server stopped answering; restarting it")
        self.server.restart()
        self.host, self.port = self.server.address
        return self._connect()

    def close(self):
        self.server.stop()

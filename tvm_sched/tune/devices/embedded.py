"""``kind="embedded"`` (the default): :class:`EmbeddedDevices`, an RPC server of our own on
127.0.0.1 (:class:`~tvm_sched.tune.server.EmbeddedServer`), started by :meth:`prepare` before the
slow work so its start-up overlaps it.

A session is opened after a handshake check; a server that is dead, or alive but deaf (it
accepts connections and never answers: hung, or still serving a lost session), is restarted
once, so :meth:`EmbeddedDevices.reopen` ends within ``check_timeout + stop + start_timeout +
check_timeout + connect_timeout`` seconds at most.
"""

from __future__ import annotations

import logging

from tvm_sched.errors import DeviceUnavailableError
from tvm_sched.tune.devices.base import CHECK_TIMEOUT_S, CONNECT_TIMEOUT_S
from tvm_sched.tune.devices.server import ServerDevices
from tvm_sched.tune.server import EmbeddedServer

__all__ = ["EmbeddedDevices"]

log = logging.getLogger(__name__)


class EmbeddedDevices(ServerDevices):
    """The default: an RPC server of our own on 127.0.0.1, restarted once per loss.

    Parameters
    ----------
    lifetime
        Seconds after which the server ends itself.
    connect_timeout, check_timeout
        Deadlines of ``rpc.connect`` and of the handshake check, seconds.
    start_timeout
        Seconds the server may take to start listening.
    """

    def __init__(self, *, lifetime: float = 3600.0, connect_timeout: float = CONNECT_TIMEOUT_S,
                 check_timeout: float = CHECK_TIMEOUT_S, start_timeout: float = 60.0):
        self.server = EmbeddedServer(lifetime=lifetime, start_timeout=start_timeout)
        self.key = "local"
        self.session_timeout = 0
        self.connect_timeout = connect_timeout
        self.check_timeout = check_timeout
        self.host, self.port = "127.0.0.1", None

    def check(self) -> None:
        """Nothing to reach before :meth:`prepare` starts the server; afterwards the
        handshake check of :class:`ServerDevices`."""
        if self.port is not None:
            super().check()

    def prepare(self) -> None:
        if not self.server.alive():
            self.server.launch()

    def open(self):
        if not self.server.alive():
            self.server.stop()
            self.server.launch()
        self.server.wait_ready()
        self.host, self.port = self.server.address
        return [("embedded", self._session())]

    def reopen(self, name):
        """A new session, as :meth:`Devices.reopen <tvm_sched.tune.devices.base.Devices.reopen>`.

        Parameters
        ----------
        name
            The device's name.
        """
        return self._session()

    def _session(self):
        """A session on a server that answers; a dead or deaf one is restarted once.

        Raises
        ------
        DeviceUnavailableError
            The restarted server did not start, or does not answer either.
        """
        if self.server.alive() and self.port is not None:
            try:
                return self._connect()
            except DeviceUnavailableError as err:
                log.warning("%s; restarting the embedded RPC server", err)
        else:
            log.warning("the embedded RPC server is gone; restarting it")
        self.server.restart()
        self.host, self.port = self.server.address
        return self._connect()

    def close(self):
        self.server.stop()
        self.port = None

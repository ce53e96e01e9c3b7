"""``kind="server"``: :class:`ServerDevices`, one RPC server at ``host:port``.

Every connect is a handshake check (:func:`~tvm_sched.tune.devices.base.check_answers`) then
``rpc.connect`` under a deadline: a server that is gone, hung, or busy with another session is a
one-line :class:`~tvm_sched.errors.DeviceUnavailableError` within seconds, never a wait for good.
"""

from __future__ import annotations

from tvm import rpc

from tvm_sched.tune.devices.base import (
    CHECK_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    Devices,
    call_with_deadline,
    check_answers,
    parse_address,
)

__all__ = ["ServerDevices"]


class ServerDevices(Devices):
    """One RPC server at ``host:port``.

    Parameters
    ----------
    address
        ``"host:port"`` or ``(host, port)``.
    key
        Device key stored in records (default ``"host:port"``).
    session_timeout
        Seconds after which the server ends a session (0: never), TVM's option.
    connect_timeout
        Deadline of one ``rpc.connect``, seconds.
    check_timeout
        Deadline of the handshake check before it, seconds.
    """

    def __init__(self, address: str | tuple[str, int], *, key: str | None = None,
                 session_timeout: float = 0, connect_timeout: float = CONNECT_TIMEOUT_S,
                 check_timeout: float = CHECK_TIMEOUT_S):
        self.host, self.port = (parse_address(address, "--rpc-server")
                                if isinstance(address, str) else address)
        self.key = key or f"{self.host}:{self.port}"
        self.session_timeout = session_timeout
        self.connect_timeout = connect_timeout
        self.check_timeout = check_timeout

    def check(self) -> None:
        """The server answers TVM's RPC handshake within ``check_timeout`` seconds.

        Raises
        ------
        DeviceUnavailableError
            It refuses the connection, or accepts it and does not answer in time.
        """
        check_answers(self.host, self.port, "the RPC server", "connect to",
                      timeout=self.check_timeout)

    def _connect(self):
        """A session: the handshake check, then ``rpc.connect`` within ``connect_timeout``.

        Raises
        ------
        DeviceUnavailableError
            Either step failed or ran past its deadline.
        """
        self.check()
        host, port, timeout = self.host, self.port, self.session_timeout
        return call_with_deadline(
            lambda: rpc.connect(host, port, session_timeout=timeout), self.connect_timeout,
            f"cannot connect to the RPC server at {host}:{port}", discard=_drop)

    def open(self):
        return [(f"{self.host}:{self.port}", self._connect())]

    def reopen(self, name):
        """A new session, as :meth:`Devices.reopen <tvm_sched.tune.devices.base.Devices.reopen>`.

        Parameters
        ----------
        name
            The device's name.
        """
        return self._connect()


def _drop(sess) -> None:
    """A session that came after its deadline: dropping the last reference closes it."""
    del sess

"""The runner interface (:class:`Runner`: hands out RPC sessions, one per device) and the address
helpers every runner shares. One runner per module in this package; :func:`create_runner` in
:mod:`tvm_sched.tune.runners` makes one by kind.
"""

from __future__ import annotations

from typing import Any

from tvm_sched.errors import DeviceUnavailableError, TuneInputError

__all__ = ["Runner", "parse_address", "reachable"]


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``, or a :class:`TuneInputError` naming ``what``."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TuneInputError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def reachable(host: str, port: int, what: str, verb: str, timeout: float = 5.0) -> None:
    """A TCP connection to ``host:port`` opens (and is closed again), or a
    :class:`DeviceUnavailableError` saying that it does not."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise DeviceUnavailableError(f"cannot {verb} {what} at {host}:{port}: "
                                     f"{err.strerror or err}") from None


class Runner:
    """Hands out RPC sessions, one per device."""

    #: Device key stored in records (same key = comparable measurements).
    key: str = "local"

    def check(self) -> None:
        """Fail fast when the devices cannot be reached at all (called before any work).

        Raises
        ------
        DeviceUnavailableError
            The server or tracker does not accept connections.
        """

    def prepare(self) -> None:
        """Start slow things early (the tuner calls this before proposing and building)."""

    def open(self) -> list[tuple[str, Any]]:
        """``(device name, rpc session)`` for every device to use."""
        raise NotImplementedError

    def reopen(self, name: str) -> Any:
        """A new session to device ``name`` after its session was lost (one try)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`open` started."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

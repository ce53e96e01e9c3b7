"""``kind="server"``: :class:`ServerRunner`, one RPC server at ``host:port``."""

from __future__ import annotations

from tvm import rpc

from tvm_sched.errors import DeviceUnavailableError, one_line
from tvm_sched.tune.runners.base import Runner, parse_address, reachable

__all__ = ["ServerRunner"]


class ServerRunner(Runner):
    """One RPC server at ``host:port``."""

    def __init__(self, address: str | tuple[str, int], *, key: str | None = None,
                 session_timeout: float = 0):
        self.host, self.port = (parse_address(address, "--rpc-server")
                                if isinstance(address, str) else address)
        self.key = key or f"{self.host}:{self.port}"
        self.session_timeout = session_timeout

    def check(self) -> None:
        reachable(self.host, self.port, "the RPC server", "connect to")

    def _connect(self):
        try:
            return rpc.connect(self.host, self.port, session_timeout=self.session_timeout)
        except Exception as err:  # noqa: BLE001 - TVM raises RuntimeError/TVMError/OSError
            raise DeviceUnavailableError(
                f"cannot connect to the RPC server at {self.host}:{self.port}: "
                f"{one_line(err, last=True, limit=200)}"
            ) from None

    def open(self):
        return [(f"{self.host}:{self.port}", self._connect())]

    def reopen(self, name):
        return self._connect()

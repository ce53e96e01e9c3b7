"""``kind="local"``: :class:`InProcessDevices`, ``rpc.LocalSession()`` in this process (tests,
quick looks): the same code path as a server, no sockets."""

from __future__ import annotations

from tvm import rpc

from tvm_sched.tune.devices.base import Devices

__all__ = ["InProcessDevices"]


class InProcessDevices(Devices):
    """``rpc.LocalSession`` in this process: the same code path as a server, no sockets."""

    key = "local"

    def open(self):
        _register()
        return [("in-process", rpc.LocalSession())]

    def reopen(self, name):
        """A new session, as :meth:`Devices.reopen <tvm_sched.tune.devices.base.Devices.reopen>`.

        Parameters
        ----------
        name
            The device's name.
        """
        _register()
        return rpc.LocalSession()


def _register() -> None:
    """The functions a tvm_sched server registers at start (``runtime.rpc``: lane modules,
    profiles, the thread pool), registered in this process: its sessions call them here."""
    from tvm_sched.runtime import rpc as device_functions

    device_functions.register()

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
        return [("in-process", rpc.LocalSession())]

    def reopen(self, name):
        """A new session, as :meth:`Devices.reopen <tvm_sched.tune.devices.base.Devices.reopen>`.

        Parameters
        ----------
        name
            The device's name.
        """
        return rpc.LocalSession()

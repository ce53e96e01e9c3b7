"""``kind="local"``: :class:`InProcessRunner`, ``rpc.LocalSession()`` in this process (tests,
quick looks): the same code path as a server, no sockets."""

from __future__ import annotations

from tvm import rpc

from tvm_sched.tune.runners.base import Runner

__all__ = ["InProcessRunner"]


class InProcessRunner(Runner):
    """``rpc.LocalSession`` in this process: the same code path as a server, no sockets."""

    key = "local"

    def open(self):
        return [("in-process", rpc.LocalSession())]

    def reopen(self, name):
        """A new session, as :meth:`Runner.reopen <tvm_sched.tune.runners.base.Runner.reopen>`.

        Parameters
        ----------
        name
            The device's name.
        """
        return rpc.LocalSession()

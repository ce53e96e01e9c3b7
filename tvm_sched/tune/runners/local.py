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
        return rpc.LocalSession()

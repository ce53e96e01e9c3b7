"""Operator graphs: :class:`OpGraph` and small graph algorithms (pure Python + numpy)."""

from tvm_sched.graph.opgraph import FORMAT_NAME, FORMAT_VERSION, OpGraph

__all__ = ["OpGraph", "FORMAT_NAME", "FORMAT_VERSION"]

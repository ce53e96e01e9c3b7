"""Operator graphs: :class:`OpGraph` (data and validation), :mod:`~tvm_sched.graph.algorithms`
(topological order, levels on CSR arrays) and :mod:`~tvm_sched.graph.io` (JSON, networkx,
fingerprint); pure Python + numpy."""

from tvm_sched.graph.opgraph import FORMAT_NAME, FORMAT_VERSION, OpGraph

__all__ = ["OpGraph", "FORMAT_NAME", "FORMAT_VERSION"]

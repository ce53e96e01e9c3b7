"""Operator graphs: :class:`OpGraph` (data and validation), :mod:`~tvm_sched.graph.algorithms`
(Kahn's algorithm, the one cycle finder, levels on CSR arrays), :mod:`~tvm_sched.graph.orders`
(the topological orders every layer uses: program, depth- and breadth-first, priority, least peak
memory first, random) and :mod:`~tvm_sched.graph.io` (JSON, networkx, fingerprint); pure Python +
numpy."""

from tvm_sched.graph.algorithms import find_cycle
from tvm_sched.graph.opgraph import FORMAT_NAME, FORMAT_VERSION, OpGraph
from tvm_sched.graph.orders import (
    bfs_order,
    dfs_order,
    lpmf_order,
    priority_order,
    priority_orders_batch,
    program_order,
    random_order,
)

__all__ = [
    "OpGraph", "FORMAT_NAME", "FORMAT_VERSION", "find_cycle", "program_order", "dfs_order",
    "bfs_order", "priority_order", "priority_orders_batch", "lpmf_order", "random_order",
]

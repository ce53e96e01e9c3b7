"""CP-SAT model of the least liveness peak memory of an order (one lane).

Contract
--------
:func:`build_memory` returns a :class:`~.common.CPModel` whose optimum is the least peak of
:mod:`tvm_sched.cost.memory` over all topological orders (exact while the byte sizes sum to at
most :data:`~.common.DEFAULT_LIMIT`; larger sizes are scaled and then nothing is claimed).

Model (liveness semantics of :mod:`tvm_sched.cost.memory`):

- a step ``t_v`` in ``[#ancestors(v), n - 1 - #descendants(v)]`` per node, ``AddAllDifferent``
  (kept compact: CP-SAT is told not to expand it into n² literals beyond 16 nodes, which was
  faster on every random DAG of 30-300 nodes tried), ``t_u + 1 <= t_v`` on every edge;
- node v's tensor is live on the steps ``[t_v, end_v)``: ``end_v = n`` for a function output,
  ``t_v + 1`` for a tensor nobody reads, and ``max(t_c for consumers c) + 1`` otherwise
  (``AddMaxEquality``; one consumer needs no extra variable);
- ``AddCumulative`` of these variable-size intervals with demand ``out_bytes[v]`` (zero-byte
  tensors are left out) and capacity a peak variable ``P``, minimised, with the redundant bound
  ``P >= memory_lower_bound`` and ``P <= `` the peak of the warm-start order.

Warm start: the better of the graph's Kahn order and a depth-first order. The schedule read back
is the order of the steps.
"""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from tvm_sched.cost import peak_memory_batch
from tvm_sched.cost.memory import memory_lower_bound
from tvm_sched.graph import OpGraph, dfs_order
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.cpsat.common import CPModel, add_hints, to_integers

__all__ = ["build_memory", "step_bounds"]

#: Above this many nodes the step domains come from path depths instead of exact ancestor counts.
_BITSET_MAX_NODES = 20_000

#: CP-SAT expands an all-different over a permutation into n² literals and probes them; from a
#: few dozen nodes on, that presolve alone can eat the whole budget (100 nodes: 1.5 M clauses,
#: > 1 s). Keeping the constraint compact was 2-6x faster to optimal on 30-node random DAGs and
#: found better peaks on 60-300 nodes within 10 s.
_PARAMS = {"max_alldiff_domain_size": 16}


def step_bounds(graph: OpGraph) -> tuple[np.ndarray, np.ndarray]:
    """Earliest and latest possible step of every node in any topological order.

    Exact (ancestor and descendant counts, by bitsets) up to 20,000 nodes; path depths beyond.

    Parameters
    ----------
    graph
        The graph.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lo, hi)``, int64 per node.

    Examples
    --------
    >>> g = OpGraph(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    >>> [b.tolist() for b in step_bounds(g)]
    [[0, 1, 1, 3], [0, 2, 2, 3]]
    """
    n = graph.num_nodes
    topo = graph.topological_order.tolist()
    preds, succs = graph.pred_lists, graph.succ_lists
    if n > _BITSET_MAX_NODES:
        depth = graph.depth
        height = np.zeros(n, dtype=np.int64)
        for v in reversed(topo):
            if succs[v]:
                height[v] = 1 + max(int(height[c]) for c in succs[v])
        return depth.astype(np.int64), (n - 1 - height).astype(np.int64)
    anc = [0] * n
    for v in topo:
        acc = 0
        for u in preds[v]:
            acc |= anc[u] | (1 << u)
        anc[v] = acc
    desc = [0] * n
    for v in reversed(topo):
        acc = 0
        for c in succs[v]:
            acc |= desc[c] | (1 << c)
        desc[v] = acc
    lo = np.array([a.bit_count() for a in anc], dtype=np.int64)
    hi = np.array([n - 1 - d.bit_count() for d in desc], dtype=np.int64)
    return lo, hi


def build_memory(graph: OpGraph, *, resolution: int, hint: bool) -> CPModel:
    """The CP model of the peak-memory objective on ``graph`` (see the module docstring).

    Parameters
    ----------
    graph
        The graph.
    resolution
        Passed to :func:`~tvm_sched.solvers.cpsat.common.to_integers` for the sizes.
    hint
        Warm-start the model from the better of the topological and depth-first orders.

    Returns
    -------
    CPModel
        The model; its watched variables are the steps of the nodes.
    """
    n = graph.num_nodes
    scaled = to_integers(graph.out_bytes.astype(np.float64), resolution)
    size = scaled.values
    orders = np.stack([graph.topological_order, dfs_order(graph)])
    peaks = peak_memory_batch(graph.replace(out_bytes=size) if not scaled.exact else graph, orders)
    warm = orders[int(np.argmin(peaks))]
    ub = int(peaks.min())
    lb = min(ub, int(memory_lower_bound(graph)) if scaled.exact else 0)

    model = cp_model.CpModel()
    lo, hi = step_bounds(graph)
    t = [model.new_int_var(int(lo[v]), int(hi[v]), f"t{v}") for v in range(n)]
    peak = model.new_int_var(lb, ub, "peak")
    model.add_all_different(t)
    for u, v in zip(graph.src.tolist(), graph.dst.tolist(), strict=True):
        model.add(t[v] >= t[u] + 1)
    last, spans = _liveness(model, graph, t, lo, hi, size)
    intervals = [iv for iv, _ in spans]
    demands = [int(d) for _, d in spans]
    if intervals:
        model.add_cumulative(intervals, demands, peak)
    model.minimize(peak)

    if hint:
        pos = np.empty(n, dtype=np.int64)
        pos[warm] = np.arange(n)
        add_hints(model, t, pos.tolist())
        for v, (var, sz) in last.items():
            end = int(pos[list(graph.succ_lists[v])].max()) + 1
            if var is not None:
                model.add_hint(var, end - 1)
            model.add_hint(sz, end - int(pos[v]))
        model.add_hint(peak, ub)

    def decode(values: np.ndarray) -> Schedule:
        return Schedule(order=np.argsort(values, kind="stable"))

    stats = {"peak_ub": ub / scaled.factor}
    return CPModel(model, t, decode, divisor=scaled.factor, exact=scaled.exact,
                   warm=Schedule(order=warm), params=dict(_PARAMS), stats=stats)


def _liveness(model, graph, t, lo, hi, size):
    """Live intervals of the non-empty tensors; ``last`` maps a read tensor to its variables."""
    n = graph.num_nodes
    succs = graph.succ_lists
    last: dict[int, tuple] = {}
    spans = []
    for v in range(n):
        if size[v] <= 0:
            continue
        cons = succs[v]
        if graph.is_output[v]:
            iv = model.new_interval_var(t[v], n - t[v], n, f"live{v}")
        elif not cons:
            iv = model.new_fixed_size_interval_var(t[v], 1, f"live{v}")
        else:
            if len(cons) == 1:
                mx, end = None, t[cons[0]] + 1
            else:
                lo_m = max(int(lo[c]) for c in cons)
                hi_m = max(int(hi[c]) for c in cons)
                mx = model.new_int_var(lo_m, hi_m, f"last{v}")
                model.add_max_equality(mx, [t[c] for c in cons])
                end = mx + 1
            sz = model.new_int_var(1, n, f"len{v}")
            iv = model.new_interval_var(t[v], sz, end, f"live{v}")
            last[v] = (mx, sz)
        spans.append((iv, size[v]))
    return last, spans

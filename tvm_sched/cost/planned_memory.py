"""A replica of TVM's static memory planner (``StaticPlanBlockMemory``) on an OpGraph.

TVM's planner does not allocate the liveness peak: it walks the bindings in program order and
hands out *storage tokens* greedily, so the bytes it reserves depend on the order. This module
replays that walk for any order of an extracted graph, in pure Python (no TVM), so solvers can
score thousands of orders by what TVM will really allocate.

The algorithm, as established against ``tvm_sched.relax.planned_bytes`` (TVM 0.27):

- Every output tensor of a ``call_tir`` becomes an ``alloc_tensor`` and asks for a token of
  ``bytes`` = elements x dtype size. Tensors that reach the function's return value, another
  block or a call the planner does not understand are never planned (not counted). A reshape that
  ``RewriteDataflowReshape`` turns into a view shares its input's token; tuples and
  tuple-get-items pass tokens through.
- A token's reference count is one for its own call (the output buffer is an argument of the
  kernel call) plus one per occurrence of the tensor among later calls' arguments.
- At each call the outputs are served first, in field order: from the free pool of the same dtype
  (a multimap keyed by bytes) take the smallest free token with ``size <= bytes <= 16 * size``
  (the earliest released among equal sizes); failing that, the largest free token with
  ``size // 16 <= bytes < size`` (the latest released among equal sizes), which grows to
  ``size``; failing that, a new token.
- Then the call's arguments (inputs in order, then its own outputs) drop one reference each; a
  token whose count reaches zero goes back to its dtype's pool, in that order.
- The planned bytes are the sum of the final sizes of all tokens (``alloc_storage`` sizes).

The metadata is read by :class:`~tvm_sched.memory.planner.PlannerMeta`. A graph without the
extraction metadata (``meta["planner"]``, written by :func:`tvm_sched.relax.extract.extract`) is
read as: one tensor of ``out_bytes`` per node, all of one dtype, read by its successors, planned
unless it is a function output or empty.

One order takes a few microseconds per node, so 1,000 orders of a 200-node graph score in about
a second.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left, insort
from dataclasses import dataclass

import numpy as np

from tvm_sched.graph import OpGraph
from tvm_sched.memory.planner import PlannerMeta
from tvm_sched.schedule import as_orders

__all__ = ["planned_memory", "planned_memory_batch", "planned_memory_lower_bound",
           "MATCH_RANGE"]

#: Reuse window of TVM's planner: a free token of ``size / 16 .. size * 16`` bytes may serve.
MATCH_RANGE = 16


@dataclass(frozen=True)
class _Plan:
    """The order-independent part of the replay, compiled once per graph."""

    size: tuple[int, ...]  # per planned tensor
    dtype: tuple[int, ...]  # per planned tensor: its pool
    ref: tuple[int, ...]  # per planned tensor: initial reference count
    allocs: tuple[tuple[int, ...], ...]  # per node: planned tensors it allocates
    releases: tuple[tuple[tuple[int, int], ...], ...]  # per node: (tensor, drops) in order
    num_dtypes: int
    step_bytes: tuple[int, ...]  # per node: planned bytes live while it runs (lower bound)


def _compile(graph: OpGraph) -> _Plan:
    meta = PlannerMeta.from_graph(graph)
    tid = {(v, k): i for i, (v, k, _) in enumerate(meta.planned())}
    size = [t.nbytes for _, _, t in meta.planned()]
    dtype = [t.dtype for _, _, t in meta.planned()]
    ref = [0] * len(size)
    allocs, releases, step = [], [], []
    for v in range(graph.num_nodes):
        own = [tid[(v, k)] for k in range(len(meta.out[v])) if (v, k) in tid]
        args = [tid[key] for key in meta.reads[v] if key in tid]
        args += own
        # Each occurrence is one reference; a token is freed at its last occurrence.
        drops: dict[int, int] = {}
        for t in args:
            ref[t] += 1
            drops[t] = drops.pop(t, 0) + 1  # re-inserted: ordered by last occurrence
        allocs.append(tuple(own))
        releases.append(tuple(drops.items()))
        step.append(sum(size[t] for t in drops))
    return _Plan(tuple(size), tuple(dtype), tuple(ref), tuple(allocs), tuple(releases),
                 meta.num_dtypes, tuple(step))


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(graph: OpGraph) -> _Plan:
    """The compiled replay of ``graph``, kept as long as the graph lives."""
    plan = _PLANS.get(graph)
    if plan is None:
        plan = _PLANS[graph] = _compile(graph)
    return plan


def _replay(plan: _Plan, order) -> int:
    size, dtype, allocs, releases = plan.size, plan.dtype, plan.allocs, plan.releases
    ref = list(plan.ref)
    token = [0] * len(size)  # tensor -> storage id
    sbytes: list[int] = []  # storage id -> current bytes
    pools: list[list[tuple[int, int, int]]] = [[] for _ in range(plan.num_dtypes)]
    seq = 0
    for v in order:
        for t in allocs[v]:
            pool = pools[dtype[t]]
            s = size[t]
            i = bisect_left(pool, (s,))
            if i < len(pool) and pool[i][0] <= s * MATCH_RANGE:
                sid = pool.pop(i)[2]
            elif i > 0 and pool[i - 1][0] >= s // MATCH_RANGE:
                sid = pool.pop(i - 1)[2]
                sbytes[sid] = s
            else:
                sid = len(sbytes)
                sbytes.append(s)
            token[t] = sid
        for t, c in releases[v]:
            r = ref[t] - c
            ref[t] = r
            if r == 0:
                sid = token[t]
                insort(pools[dtype[t]], (sbytes[sid], seq, sid))
                seq += 1
    return sum(sbytes)


def planned_memory_batch(graph: OpGraph, orders: np.ndarray) -> np.ndarray:
    """Bytes TVM's planner allocates (B,) int64 for ``B`` orders (B, n) of ``graph``.

    Orders are assumed topological (not checked; a non-topological order gives a number for a
    program TVM would reject).

    Raises
    ------
    InvalidScheduleError
        ``orders`` does not have shape (B, n) or holds ids outside the graph.
    InvalidGraphError
        The graph's ``meta["planner"]`` is malformed.

    Examples
    --------
    >>> g = OpGraph(4, [(0, 1), (1, 2), (2, 3)], out_bytes=[64, 64, 64, 64],
    ...             is_output=[False, False, False, True])
    >>> planned_memory_batch(g, np.array([[0, 1, 2, 3]])).tolist()  # 0 and 2 share a token
    [128]
    """
    o = as_orders(graph, orders)
    plan = _plan(graph)
    rows = o.tolist()
    return np.fromiter((_replay(plan, r) for r in rows), dtype=np.int64, count=len(rows))


def planned_memory(graph: OpGraph, order) -> int:
    """Bytes TVM's planner allocates when ``graph`` runs in ``order`` (see the module docstring).

    Examples
    --------
    >>> g = OpGraph(3, [(0, 2), (1, 2)], out_bytes=[400, 20, 8], is_output=[0, 0, 1])
    >>> planned_memory(g, [0, 1, 2]), planned_memory(g, [1, 0, 2])
    (420, 420)
    """
    return int(planned_memory_batch(graph, np.asarray(order)[None])[0])


def planned_memory_lower_bound(graph: OpGraph) -> int:
    """A lower bound on the planned bytes of every order.

    While a node runs, its planned inputs and outputs are live in distinct tokens, each at least
    as large as its tensor.
    """
    plan = _plan(graph)
    return int(max(plan.step_bytes, default=0))

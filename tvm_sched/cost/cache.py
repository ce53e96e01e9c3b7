"""Cache-miss proxy of an order: bytes re-read after they fell out of a cache of a given size.

On one device the kernels' compute does not depend on the order, but where their inputs come
from does: a tensor read soon after it was written is still in the cache, one read after many
other tensors went through it comes from memory again. The model:

- the cache holds whole tensors, least recently used first out, ``cache_bytes`` in all;
- running node v reads each predecessor's tensor (``out_bytes`` of the producer), then writes its
  own output into the cache; a read of a tensor that is not in the cache counts its bytes as a
  miss and brings it back in;
- a tensor larger than the cache streams through it: it is never cached (every read of it
  misses) and flushes everything else;
- model inputs and weights are not nodes and are not counted (they are read the same number of
  times in every order).

Because the cache content under LRU is always the longest most-recent prefix of the recency stack
that fits, the misses never grow when the cache grows (the inclusion property), which the tests
check. A simulation in Python over the order: ``O(n + |E|)`` dictionary operations per order.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph

__all__ = ["cache_miss_bytes", "cache_miss_bytes_batch"]


def cache_miss_bytes(graph: OpGraph, order, cache_bytes: int) -> int:
    """Bytes of predecessor tensors read while not in an LRU cache of ``cache_bytes`` bytes.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 2), (1, 2)], out_bytes=[4, 4, 4])
    >>> cache_miss_bytes(g, [0, 1, 2], cache_bytes=8), cache_miss_bytes(g, [0, 1, 2], 4)
    (0, 8)
    """
    if cache_bytes < 0:
        raise ValueError(f"cache_bytes must be >= 0, got {cache_bytes}")
    n = graph.num_nodes
    o = [int(v) for v in np.asarray(order).reshape(-1)]
    if sorted(o) != list(range(n)):
        raise InvalidScheduleError(f"order must be a permutation of the {n} nodes")
    size = [int(b) for b in graph.out_bytes]
    preds = graph.pred_lists
    cache: OrderedDict[int, None] = OrderedDict()  # last item = most recently used
    held = 0
    missed = 0

    def touch(t: int) -> None:
        nonlocal held
        if t in cache:
            cache.move_to_end(t)
            return
        if size[t] > cache_bytes:  # streams through: nothing else survives it
            cache.clear()
            held = 0
            return
        cache[t] = None
        held += size[t]
        while held > cache_bytes:
            old, _ = cache.popitem(last=False)
            held -= size[old]

    for v in o:
        for u in preds[v]:
            if u not in cache:
                missed += size[u]
            touch(u)
        touch(v)
    return missed


def cache_miss_bytes_batch(graph: OpGraph, orders, cache_bytes: int) -> np.ndarray:
    """:func:`cache_miss_bytes` of every row of a ``(B, n)`` array of orders (int64)."""
    o = np.asarray(orders, dtype=np.int64)
    if o.ndim == 1:
        o = o[None, :]
    return np.array([cache_miss_bytes(graph, row, cache_bytes) for row in o], dtype=np.int64)

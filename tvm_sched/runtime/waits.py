"""Cross-lane waits and the happens-before relation of a lane schedule (pure Python + numpy).

Contract
--------
``lane_waits(graph, schedule, is_step)``: the schedule's per-lane chains restricted to kernel
nodes (``is_step``; other nodes -- views -- run no code and are seen through), empty lanes
dropped, and per kernel node the nodes on *other* lanes it must wait for. A node's producers are
its kernel predecessors seen through views. Waits are a transitive reduction: a producer gets a
wait only if neither the node's lane predecessor nor a wait already chosen implies it. Producers
are taken latest (in the schedule's order) first; a producer later in the order cannot happen
before an earlier one, so no chosen wait is implied by one chosen after it: the set is minimal.

``happens_before(graph, chains, waits, order)``: (n, n) bool, ``hb[a, b]`` iff ``a`` finishes
before ``b`` starts in every run -- data edges, lane orders and waits, transitively closed
(view nodes take part through their data edges).
"""

from __future__ import annotations

import numpy as np

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.memory import happens_before_from_lanes
from tvm_sched.schedule import Schedule

__all__ = ["lane_waits", "happens_before", "bits_to_matrix", "ancestor_bits"]


def ancestor_bits(preds, order) -> list[int]:
    """Per node, the bitset (a Python int) of every node before it through ``preds``.

    Parameters
    ----------
    preds
        Per node, its direct predecessors.
    order
        Every node once, each after its predecessors (a topological order of ``preds``).

    Returns
    -------
    list of int
        Bit ``u`` of entry ``v`` is set when ``u`` reaches ``v``; :func:`bits_to_matrix` turns
        them into the relation's matrix.

    Examples
    --------
    >>> ancestor_bits([[], [0], [1]], [0, 1, 2])
    [0, 1, 3]
    """
    reach = [0] * len(preds)
    for v in order:
        r = 0
        for u in preds[v]:
            r |= reach[u] | (1 << u)
        reach[v] = r
    return reach


def bits_to_matrix(reach: list[int], n: int) -> np.ndarray:
    """(n, n) bool from per-column bitsets: ``m[a, b]`` iff bit ``a`` of ``reach[b]``.

    Parameters
    ----------
    reach
        One bitset (a Python int) per column, at most ``n`` used.
    n
        Matrix size.

    Returns
    -------
    numpy.ndarray
        (n, n) bool; columns past ``len(reach)`` are false.

    Examples
    --------
    >>> bits_to_matrix([0b10, 0, 0b11], 3).astype(int).tolist()
    [[0, 0, 1], [1, 0, 1], [0, 0, 0]]
    """
    m = np.zeros((n, n), dtype=bool)
    if not n or not reach:
        return m
    width = (n + 7) // 8  # bytes per bitset, low bit first
    raw = b"".join((r & ((1 << n) - 1)).to_bytes(width, "little") for r in reach[:n])
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(-1, width), axis=1,
                         bitorder="little")[:, :n]
    m[:, :bits.shape[0]] = bits.T.astype(bool)
    return m


def _kernel_preds(graph: OpGraph, is_step: list[bool]) -> list[list[int]]:
    """Per node, the kernel nodes it reads, seen through view nodes."""
    out: list[list[int]] = []
    for v in range(graph.num_nodes):
        ps: set[int] = set()
        for u in graph.preds(v):
            ps.update([u] if is_step[u] else out[u])
        out.append(sorted(ps))
    return out


def _chains(graph: OpGraph, schedule: Schedule, is_step: list[bool]) -> list[list[int]]:
    chains = [[v for v in c if is_step[v]] for c in schedule.chains()]
    return [c for c in chains if c]


def lane_waits(graph: OpGraph, schedule: Schedule, is_step: list[bool]
               ) -> tuple[list[list[int]], dict[int, list[int]]]:
    """Per-lane node chains (kernel nodes only, empty lanes dropped) and, per kernel node, the
    cross-lane nodes it waits for (a transitive reduction; see the module docstring).

    Parameters
    ----------
    graph
        The module's graph.
    schedule
        A lane schedule of it.
    is_step
        Per node, whether it runs a kernel (view nodes run none).

    Returns
    -------
    tuple
        ``(chains, waits)``: the kernel nodes of each non-empty lane in order, and per kernel
        node the cross-lane nodes it waits for, in schedule order.

    Raises
    ------
    InvalidScheduleError
        A node runs before an input on its own lane.
    """
    chains = _chains(graph, schedule, is_step)
    lane = {v: k for k, c in enumerate(chains) for v in c}
    prev = {c[i]: c[i - 1] for c in chains for i in range(1, len(c))}
    kpreds = _kernel_preds(graph, is_step)
    pos = schedule.position()
    reach: dict[int, int] = {}  # node -> bitset of nodes that happen before it
    waits: dict[int, list[int]] = {}
    for v in schedule.order:
        v = int(v)
        if not is_step[v]:
            continue
        r = 0
        if v in prev:
            p = prev[v]
            r = reach[p] | (1 << p)
        mine = []
        for u in sorted(kpreds[v], key=lambda x: -pos[x]):
            if lane[u] == lane[v] or (r >> u) & 1:
                continue
            mine.append(u)
            r |= reach[u] | (1 << u)
        for u in kpreds[v]:  # same-lane producers come earlier on the lane
            if lane[u] == lane[v] and not (r >> u) & 1:
                raise InvalidScheduleError(f"node {v} runs before its input {u} on lane "
                                           f"{lane[v]}")
        reach[v] = r
        waits[v] = sorted(mine, key=lambda x: pos[x])
    return chains, waits


def happens_before(graph: OpGraph, chains: list[list[int]], waits: dict[int, list[int]],
                   order) -> np.ndarray:
    """(n, n) bool over graph nodes: data edges + lane orders + waits, transitively closed.

    The arena planner's relation (:func:`tvm_sched.memory.happens_before_from_lanes`), with view
    nodes on no lane; ``order`` (a topological order of it) is checked by it, not needed.

    Parameters
    ----------
    graph
        The module's graph.
    chains, waits
        As :func:`lane_waits` returns them.
    order
        Ignored (kept for callers that pass it).

    Returns
    -------
    numpy.ndarray
        (n, n) bool, ``m[a, b]`` when ``a`` surely finishes before ``b`` starts.
    """
    del order
    edges = [(int(w), int(v)) for v, ws in waits.items() for w in ws]
    return happens_before_from_lanes(graph, chains, edges, every_node=False)

"""What the policy sees of a graph: static node features, DAG-relation attention, priors, condition.

Everything here is computed **once per graph** (and lane count): the policy of
:mod:`.sampler` is one-shot, so no feature depends on the partial schedule.

- **Static node features** (:data:`STATIC_FEATURES` per node): duration, top and bottom level and
  criticality (times divided by the makespan lower bound ``max(critical path, total / m)`` so
  graphs in seconds and in STG integers look alike), in/out degree, output size, output flag,
  ancestor and descendant shares, depth, source flag, log size, and the two **priors** below.
- **Priors**: ``makespan_prior`` = log(bottom level / critical path) (critical-path list
  scheduling runs the highest first; in log scale, a multiple ``b`` of it makes the sampler
  prefer ``u`` over ``v`` with odds ``(bl_u / bl_v)^b`` -- randomised list scheduling with
  multiplicative noise, which the network then corrects); ``memory_prior`` = 5 (1 - rank / n)
  in the best memory heuristic's order (least peak memory first, DFS, BFS; ranking by it
  reproduces that order exactly).
- **Relations**: for attention, each node's direct neighbours, ancestors, descendants and
  incomparable nodes (Topoformer, Gagrani et al. 2022). Reachability is computed on bit-packed
  rows (``n * n / 8`` bytes), so a 10,000-node graph needs 12.5 MB, not 100 MB.
- **Condition**: log sigma, task (memory or makespan), lanes / :data:`MAX_LANES`, communication.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tvm_sched.cost.memory import peak_memory_batch
from tvm_sched.graph import OpGraph, bfs_order, dfs_order, lpmf_order

__all__ = ["STATIC_FEATURES", "COND_FEATURES", "NUM_RELATIONS", "MAX_LANES", "GraphEncoding",
           "encode_graph", "reachability_packed", "relation_block", "memory_reference",
           "condition"]

MAX_LANES = 8
STATIC_FEATURES = 16
COND_FEATURES = 4
NUM_RELATIONS = 4

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def reachability_packed(graph: OpGraph) -> np.ndarray:
    """Descendant sets as bit-packed rows (n, ceil(n / 8)) uint8 (bit v of row u: u -> ... -> v).

    Parameters
    ----------
    graph
        The graph.

    Returns
    -------
    numpy.ndarray
        (n, max(1, ceil(n / 8))) uint8, bits in ``np.packbits`` (big-endian) order.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 1), (1, 2)])
    >>> np.unpackbits(reachability_packed(g), axis=1, count=3).tolist()
    [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    """
    n = graph.num_nodes
    width = (n + 7) // 8
    reach = np.zeros((n, max(width, 1)), dtype=np.uint8)
    succ = graph.succ_lists
    for v in graph.topological_order[::-1]:
        v = int(v)
        row = reach[v]
        for s in succ[v]:
            row |= reach[s]
            row[s >> 3] |= np.uint8(0x80 >> (s & 7))
    return reach


def relation_block(reach: np.ndarray, graph: OpGraph, rows: np.ndarray,
                   cols: np.ndarray) -> np.ndarray:
    """Relation masks (NUM_RELATIONS, len(rows), len(cols)) bool between node subsets.

    Relations: direct neighbour, ancestor, descendant, incomparable; every node also relates to
    itself in each (so no attention row is empty).

    Parameters
    ----------
    reach
        :func:`reachability_packed` of ``graph``.
    graph
        The graph.
    rows, cols
        Node ids of the two subsets (int arrays).

    Returns
    -------
    numpy.ndarray
        (NUM_RELATIONS, len(rows), len(cols)) bool, relations in the order above.
    """
    n = graph.num_nodes
    r = np.unpackbits(reach[rows], axis=1, count=n)[:, cols].astype(bool)  # rows -> cols
    rt = np.unpackbits(reach[cols], axis=1, count=n)[:, rows].astype(bool).T  # cols -> rows
    pos = np.full(n, -1, dtype=np.int64)
    pos[cols] = np.arange(len(cols))
    adj = np.zeros((len(rows), len(cols)), dtype=bool)
    rpos = np.full(n, -1, dtype=np.int64)
    rpos[rows] = np.arange(len(rows))
    src, dst = np.asarray(graph.src), np.asarray(graph.dst)
    for a, b in ((src, dst), (dst, src)):
        keep = (rpos[a] >= 0) & (pos[b] >= 0)
        adj[rpos[a[keep]], pos[b[keep]]] = True
    eye = rows[:, None] == cols[None, :]
    return np.stack([adj | eye, rt | eye, r | eye, ~(r | rt) | eye])


def memory_reference(graph: OpGraph) -> tuple[float, np.ndarray]:
    """Best liveness peak of least peak memory first, DFS and BFS (>= 1) and that order.

    Parameters
    ----------
    graph
        The graph.

    Returns
    -------
    tuple
        ``(peak, order)``: the peak in bytes as a float (1.0 for an empty graph) and the int64
        order reaching it.
    """
    if graph.num_nodes == 0:
        return 1.0, np.zeros(0, dtype=np.int64)
    orders = np.stack([lpmf_order(graph), dfs_order(graph), bfs_order(graph)])
    peaks = peak_memory_batch(graph, orders)
    k = int(np.argmin(peaks))
    return float(max(1, int(peaks[k]))), orders[k]


def condition(log_sigma: float, memory: bool, lanes: int, comm: bool) -> torch.Tensor:
    """The raw conditioning vector (COND_FEATURES,) float32.

    Parameters
    ----------
    log_sigma
        Log of the reward temperature.
    memory
        A memory task (else makespan).
    lanes
        Lanes of the task (scaled by ``MAX_LANES``).
    comm
        Whether the task has a communication cost.

    Returns
    -------
    torch.Tensor
        (COND_FEATURES,) float32 on the CPU.
    """
    return torch.tensor([log_sigma, float(memory), lanes / MAX_LANES, float(comm)],
                        dtype=torch.float32)


@dataclass
class GraphEncoding:
    """The per-graph inputs of the policy (numpy; see the module docstring).

    ``static`` (n, STATIC_FEATURES) float32; ``topo`` (n,) the nodes in topological order;
    ``reach`` the packed reachability; ``makespan_prior`` and ``memory_prior`` (n,) float64;
    ``mem_ref`` the best heuristic liveness peak; ``mem_order`` that heuristic's order.
    """

    graph: OpGraph
    static: np.ndarray
    topo: np.ndarray
    reach: np.ndarray
    makespan_prior: np.ndarray
    memory_prior: np.ndarray
    mem_ref: float
    mem_order: np.ndarray

    def prior(self, memory: bool) -> np.ndarray:
        """The heuristic prior logits of the task.

        Parameters
        ----------
        memory
            A memory task (else makespan).

        Returns
        -------
        numpy.ndarray
            ``memory_prior`` or ``makespan_prior``, (n,) float64.
        """
        return self.memory_prior if memory else self.makespan_prior


def encode_graph(graph: OpGraph, lanes: int) -> GraphEncoding:
    """The :class:`GraphEncoding` of ``graph`` for ``lanes`` lanes (``n`` >= 1).

    Parameters
    ----------
    graph
        A graph of at least one node.
    lanes
        Lanes the time features are scaled for (at least 1 is used).

    Returns
    -------
    GraphEncoding
        The numpy inputs of the policy.
    """
    g, n, m = graph, graph.num_nodes, max(1, int(lanes))
    dur = g.duration
    total = float(dur.sum())
    cp = max(g.critical_path_length, 1e-300)
    scale = max(cp, total / m, 1e-300)
    reach = reachability_packed(g)
    desc = _POPCOUNT[reach].sum(1)
    anc = np.zeros(n, dtype=np.int64)
    bits = np.unpackbits(reach, axis=1, count=n) if n <= 4096 else None
    if bits is not None:
        anc = bits.sum(0)
    else:  # column sums in chunks (bounded memory)
        for a in range(0, n, 1024):
            anc += np.unpackbits(reach[a:a + 1024], axis=1, count=n).sum(0)
    tl, bl, depth = g.top_level, g.bottom_level, g.depth
    ob = g.out_bytes.astype(np.float64)
    mean_dur = max(total / n, 1e-300)
    mem_ref, mem_order = memory_reference(g)
    rank = np.empty(n)
    rank[mem_order] = np.arange(n)
    memory_prior = 5.0 * (1.0 - rank / n)
    makespan_prior = np.log(np.maximum(bl / cp, 1e-3))
    static = np.stack([
        dur / scale,
        np.clip(dur / mean_dur, 0, 10) / 4,
        tl / scale,
        bl / scale,
        (tl + bl) / cp,
        np.minimum(g.in_degree, 16) / 4,
        np.minimum(g.out_degree, 16) / 4,
        ob / max(ob.max(), 1.0),
        g.is_output.astype(np.float64),
        anc / n,
        desc / n,
        depth / max(int(depth.max()), 1),
        (g.in_degree == 0).astype(np.float64),
        np.full(n, np.log(n) / 5),
        makespan_prior / 4,
        memory_prior / 5,
    ], axis=1).astype(np.float32)
    return GraphEncoding(graph=g, static=static, topo=np.asarray(g.topological_order),
                         reach=reach, makespan_prior=makespan_prior, memory_prior=memory_prior,
                         mem_ref=mem_ref, mem_order=mem_order)

"""The GFlowNet's action space: one-shot priority sampling of topological orders.

Jeon et al., "Neural DAG Scheduling via One-Shot Priority Sampling" (ICLR 2023) score every node
once and sample priority lists, decoded by list scheduling. Here that is the GFlowNet's action
space: a state is a prefix of a topological order, an action appends a *ready* node ``v`` with
probability ``softmax(logits over the ready nodes)_v``, and a terminal state is a complete order,
rewarded by the objective of its list decoding (:mod:`.reward`). The states form a tree (a prefix
has one parent), so ``P_B = 1`` and trajectory balance reads ``log Z + log P_F(x) = log R(x)``:
the sampler draws each order with probability proportional to its reward once trained.

Sampling is an **exponential race**, exact for this policy and vectorised over samples: node
``v`` rings ``E_v * exp(-logit_v)`` (``E_v ~ Exp(1)``) after its last parent rang; the order is
the order of ringing. When a node is appended, the residual times of the ready nodes are again
independent exponentials (memorylessness), so the next to ring is ready node ``v`` with
probability ``exp(logit_v) / sum over ready exp(logit_u)`` -- the policy above. One pass over the
nodes in topological order (a longest-path recursion) draws ``B`` orders at once.

``log P_F`` of given orders (:func:`order_log_prob`) needs no loop either: ``v`` is ready at step
``t`` iff all its parents sit before position ``t`` and ``v`` at or after it.
"""

from __future__ import annotations

import numpy as np
import torch

from tvm_sched.graph import OpGraph

__all__ = ["race_orders", "order_log_prob"]


def race_orders(graph: OpGraph, logits: np.ndarray, size: int,
                rng: np.random.Generator) -> np.ndarray:
    """``size`` orders (size, n) int64 drawn from the one-shot policy with node ``logits`` (n,).

    Parameters
    ----------
    graph
        The graph.
    logits
        (n,) node logits; a higher logit tends to run earlier.
    size
        Orders to draw.
    rng
        The generator of the exponential delays.

    Returns
    -------
    numpy.ndarray
        (size, n) int64 topological orders.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 2)])
    >>> race_orders(g, np.array([0.0, 50.0, 0.0]), 2, np.random.default_rng(0)).tolist()
    [[1, 0, 2], [1, 0, 2]]
    """
    n = graph.num_nodes
    lg = np.asarray(logits, dtype=np.float64)
    lg = lg - lg.max() if n else lg
    # ring delays; the exponent is clipped so that no delay is 0 or inf in float64
    delay = rng.standard_exponential((size, n)) * np.exp(np.clip(-lg, -600.0, 600.0))
    ring = np.zeros((size, n))
    preds = graph.pred_lists
    topo = graph.topological_order
    for v in topo:
        p = preds[int(v)]
        if len(p) == 0:
            ring[:, v] = delay[:, v]
        elif len(p) == 1:
            ring[:, v] = ring[:, p[0]] + delay[:, v]
        else:
            ring[:, v] = ring[:, p].max(axis=1) + delay[:, v]
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(topo, dtype=np.int64)] = np.arange(n)
    # ties (a delay lost to rounding) are broken by the topological rank: still topological
    return np.lexsort((np.broadcast_to(rank, (size, n)), ring), axis=1).astype(np.int64)


def order_log_prob(graph: OpGraph, logits: torch.Tensor, orders: np.ndarray) -> torch.Tensor:
    """``log P_F`` (B,) of orders (B, n) under node ``logits`` (n,), differentiable.

    Parameters
    ----------
    graph
        The graph.
    logits
        (n,) node logits (with gradient), on any device.
    orders
        (B, n) int topological orders.

    Returns
    -------
    torch.Tensor
        (B,) on ``logits``' device; zeros for an empty graph.

    Examples
    --------
    >>> g = OpGraph(2, [])
    >>> float(order_log_prob(g, torch.zeros(2), np.array([[0, 1]])).exp()[0])
    0.5
    """
    n = graph.num_nodes
    B = orders.shape[0]
    if n == 0:
        return logits.new_zeros(B)
    dev = logits.device
    pos = np.empty_like(orders)
    np.put_along_axis(pos, orders, np.arange(n)[None, :].repeat(B, 0), axis=1)
    last_parent = np.full((B, n), -1, dtype=np.int64)
    if graph.num_edges:
        src, dst = np.asarray(graph.src), np.asarray(graph.dst)
        np.maximum.at(last_parent.T, dst, pos[:, src].T)
    t = torch.arange(n, device=dev)
    pos_t = torch.as_tensor(pos, device=dev)
    lp_t = torch.as_tensor(last_parent, device=dev)
    ready = (pos_t[:, None, :] >= t[None, :, None]) & (lp_t[:, None, :] < t[None, :, None])
    masked = logits[None, None, :].expand(B, n, n).masked_fill(~ready, float("-inf"))
    chosen = logits[torch.as_tensor(orders, device=dev)]  # (B, n)
    return (chosen - torch.logsumexp(masked, dim=2)).sum(dim=1)

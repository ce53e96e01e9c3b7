"""The policy network: a sigma-conditioned Topoformer that scores every node once per graph.

A pre-LayerNorm transformer over the nodes whose attention heads are split into four groups by
DAG relation -- direct neighbours, ancestors, descendants, incomparable nodes (the Topoformer of
Gagrani et al., "Neural Topological Ordering for Computation Graphs", NeurIPS 2022, used by Jeon
et al., "Neural DAG Scheduling via One-Shot Priority Sampling", ICLR 2023, and by Zhang et al.,
"Robust Scheduling with GFlowNets", ICLR 2023). The conditioning vector (log sigma, task, lanes,
communication; :func:`.features.condition`) is embedded once and modulates every MLP by FiLM
(``h <- h * (1 + gamma(c)) + beta(c)``).

Output: one logit per node, ``logit_v = b(c) * prior_v + head(h_v, c)`` -- a learned, condition
dependent multiple ``b(c) > 0`` of the task's heuristic prior (:mod:`.features`) plus a learned
correction. The sampler (:mod:`.sampler`) turns logits into orders; the logits do not depend on
the partial schedule, so the network runs once per (graph, condition), not once per step.

Scale: graphs up to ``ModelConfig.dense_nodes`` nodes use dense (n, n) relation masks; larger
graphs use **windowed attention**: nodes sorted topologically, each block of ``window`` nodes
attends to the nodes within ``window`` positions before and after it (relations from the exact
reachability), so memory and time grow linearly in ``n``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tvm_sched.solvers.gflownet.features import (
    COND_FEATURES,
    NUM_RELATIONS,
    STATIC_FEATURES,
    GraphEncoding,
    relation_block,
)

__all__ = ["ModelConfig", "FiLMMLP", "TopoLayer", "PolicyNet", "attention_blocks"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the policy network (stored in every checkpoint)."""

    #: Embedding width (a multiple of ``4 * heads_per_relation``).
    dim: int = 32
    #: Attention heads per DAG relation (4 relations).
    heads_per_relation: int = 1
    #: Transformer layers of the (once per graph) encoder.
    static_layers: int = 3
    #: Hidden width of every MLP, as a multiple of ``dim``.
    mlp_mult: int = 2
    #: Width of the conditioning embedding.
    cond_dim: int = 16
    #: Largest graph encoded with dense attention; above it, windowed attention.
    dense_nodes: int = 1024
    #: Window (block) size of the windowed attention.
    window: int = 256

    def to_dict(self) -> dict:
        """The sizes as a plain dictionary (stored in checkpoints).

        Returns
        -------
        dict
            One entry per field.
        """
        return asdict(self)


class FiLMMLP(nn.Module):
    """Two-layer MLP whose hidden layer is modulated by the condition (FiLM).

    The FiLM layer starts at zero, so the MLP starts unmodulated.

    Parameters
    ----------
    d_in, d_hidden, d_out
        Input, hidden and output widths.
    cond_dim
        Width of the condition embedding.
    """

    def __init__(self, d_in: int, d_hidden: int, d_out: int, cond_dim: int):
        super().__init__()
        self.inp = nn.Linear(d_in, d_hidden)
        self.film = nn.Linear(cond_dim, 2 * d_hidden)
        self.out = nn.Linear(d_hidden, d_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to every row of ``x`` under one condition.

        Parameters
        ----------
        x
            (..., d_in) inputs.
        c
            (cond_dim,) condition embedding, same device.

        Returns
        -------
        torch.Tensor
            (..., d_out).
        """
        # c is one vector per call, so FiLM folds into the first layer's weights
        gamma, beta = self.film(c).chunk(2, dim=-1)
        scale = 1 + gamma
        h = F.linear(x, self.inp.weight * scale[:, None], self.inp.bias * scale + beta)
        return self.out(F.relu(h))


Block = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # rows, cols, additive masks (H, r, c)


def attention_blocks(enc: GraphEncoding, cfg: ModelConfig,
                     device: torch.device | str = "cpu") -> list[Block]:
    """The attention blocks of a graph: one dense block, or windows (see the module docstring).

    Parameters
    ----------
    enc
        The graph's encoding.
    cfg
        The network sizes (heads, ``dense_nodes``, ``window``).
    device
        Where the blocks are built.

    Returns
    -------
    list of tuple
        ``(rows, cols, mask)`` per block: int64 node ids and an additive float32 mask
        (H, len(rows), len(cols)) of 0 and ``-inf``, all on ``device``.
    """
    g, n = enc.graph, enc.graph.num_nodes
    if n <= cfg.dense_nodes:
        spans = [(np.arange(n), np.arange(n))]
    else:
        topo, w = enc.topo, cfg.window
        spans = [(topo[a: a + w], topo[max(0, a - w): a + 2 * w]) for a in range(0, n, w)]
    blocks = []
    for rows, cols in spans:
        rel = relation_block(enc.reach, g, rows, cols)
        rel = torch.as_tensor(rel, device=device).repeat_interleave(cfg.heads_per_relation, 0)
        mask = torch.zeros(rel.shape, dtype=torch.float32, device=device)
        blocks.append((torch.tensor(rows, device=device), torch.tensor(cols, device=device),
                       mask.masked_fill(~rel, float("-inf"))))
    return blocks


class TopoLayer(nn.Module):
    """One pre-LN transformer layer with DAG-relation attention and a FiLM MLP.

    Parameters
    ----------
    dim
        Embedding width.
    heads_per_relation
        Attention heads per DAG relation.
    mlp_mult
        Hidden width of the MLP as a multiple of ``dim``.
    cond_dim
        Width of the condition embedding.

    Raises
    ------
    ValueError
        ``dim`` is not a multiple of the number of heads.
    """

    def __init__(self, dim: int, heads_per_relation: int, mlp_mult: int, cond_dim: int):
        super().__init__()
        self.heads = NUM_RELATIONS * heads_per_relation
        if dim % self.heads:
            raise ValueError(f"dim {dim} is not a multiple of {self.heads} heads")
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = FiLMMLP(dim, mlp_mult * dim, dim, cond_dim)

    def forward(self, x: torch.Tensor, blocks: list[Block], c: torch.Tensor) -> torch.Tensor:
        """x: (n, dim); blocks: see :func:`attention_blocks`; c: (cond_dim,).

        Parameters
        ----------
        x
            (n, dim) node embeddings.
        blocks
            The graph's attention blocks, on ``x``'s device.
        c
            (cond_dim,) condition embedding.

        Returns
        -------
        torch.Tensor
            (n, dim) updated embeddings.
        """
        n, d = x.shape
        H = self.heads
        qkv = self.qkv(self.ln1(x)).reshape(n, 3, H, d // H)
        if len(blocks) == 1:
            q, k, v = qkv.permute(1, 2, 0, 3)  # (H, n, dh) each
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=blocks[0][2])
            att = a.transpose(0, 1).reshape(n, d)
        else:
            att = x.new_zeros(n, d)
            for rows, cols, mask in blocks:
                q = qkv[rows, 0].transpose(0, 1)
                k = qkv[cols, 1].transpose(0, 1)
                v = qkv[cols, 2].transpose(0, 1)
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                att = att.index_copy(0, rows, a.transpose(0, 1).reshape(len(rows), d))
        x = x + self.proj(att)
        return x + self.mlp(self.ln2(x), c)


class PolicyNet(nn.Module):
    """Topoformer encoder with a per-node logit head and a log Z head (see the module docstring).

    Parameters
    ----------
    cfg
        The sizes; default ``ModelConfig()``.

    Raises
    ------
    ValueError
        ``cfg.dim`` is not a multiple of ``4 * cfg.heads_per_relation``.
    """

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        d, hid, cd = cfg.dim, cfg.mlp_mult * cfg.dim, cfg.cond_dim
        self.cond = nn.Sequential(nn.Linear(COND_FEATURES, cd), nn.ReLU(), nn.Linear(cd, cd))
        self.inp = nn.Linear(STATIC_FEATURES, d)
        self.layers = nn.ModuleList(TopoLayer(d, cfg.heads_per_relation, cfg.mlp_mult, cd)
                                    for _ in range(cfg.static_layers))
        self.ln = nn.LayerNorm(d)
        self.head = FiLMMLP(d, hid, 1, cd)
        self.prior_scale = nn.Linear(cd, 1)
        nn.init.zeros_(self.prior_scale.weight)
        nn.init.constant_(self.prior_scale.bias, math.log(4.0))  # ~ randomised list scheduling
        nn.init.zeros_(self.head.out.weight)
        nn.init.zeros_(self.head.out.bias)
        self.log_z = FiLMMLP(d, hid, 2, cd)

    def embed_condition(self, cond_raw: torch.Tensor) -> torch.Tensor:
        """Embed the raw conditioning vector.

        Parameters
        ----------
        cond_raw
            (COND_FEATURES,) float32, from :func:`~.features.condition`.

        Returns
        -------
        torch.Tensor
            (cond_dim,).
        """
        return self.cond(cond_raw)

    def encode(self, static: torch.Tensor, blocks: list[Block], c: torch.Tensor) -> torch.Tensor:
        """Node embeddings (n, dim) from static features (n, STATIC_FEATURES).

        Parameters
        ----------
        static
            (n, STATIC_FEATURES) float32 features.
        blocks
            The graph's attention blocks.
        c
            (cond_dim,) condition embedding.

        Returns
        -------
        torch.Tensor
            (n, dim) layer-normalised embeddings.
        """
        x = self.inp(static)
        for layer in self.layers:
            x = layer(x, blocks, c)
        return self.ln(x)

    def logits(self, h: torch.Tensor, prior: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Node logits (n,) float32 from embeddings (n, dim) and the task's prior (n,).

        Parameters
        ----------
        h
            (n, dim) embeddings from :meth:`encode`.
        prior
            (n,) heuristic prior logits, scaled by a learned factor of the condition.
        c
            (cond_dim,) condition embedding.

        Returns
        -------
        torch.Tensor
            (n,) logits.
        """
        scale = torch.exp(self.prior_scale(c).clamp(-5.0, 8.0))
        return scale * prior + self.head(h, c).squeeze(-1)

    def log_partition(self, h: torch.Tensor, c: torch.Tensor, sigma: float) -> torch.Tensor:
        """Learned log Z of (graph, condition), a scalar: ``a / sigma + b log(1 + 1/sigma)``.

        Parameters
        ----------
        h
            (n, dim) embeddings (mean-pooled).
        c
            (cond_dim,) condition embedding.
        sigma
            The reward temperature.

        Returns
        -------
        torch.Tensor
            A scalar (0-dim) tensor.
        """
        a, b = self.log_z(h.mean(dim=0), c).reshape(2)
        return a / sigma + b * math.log(1.0 + 1.0 / sigma)

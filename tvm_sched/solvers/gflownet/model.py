"""The policy network: a sigma-conditioned Topoformer with forward, backward and log Z heads.

A pre-LayerNorm transformer over the nodes whose attention is masked by the DAG's relations
(Gagrani et al., "Neural DAG Scheduling via One-Shot Priority Sampling", ICLR 2023, as used by
Zhang et al., "Robust Scheduling with GFlowNets", ICLR 2023): the heads are split into four
groups that see, besides the node itself, its direct neighbours, its ancestors, its descendants,
and the nodes it is incomparable with. The conditioning vector (log sigma, task, lanes,
communication; see :func:`.features.condition`) is embedded once and enters **every** MLP through
FiLM (``h <- h * (1 + gamma(c)) + beta(c)`` on the hidden layer).

Design decisions (the paper does not fix them):

- The encoder is split in a **static** part (``static_layers`` layers over graph-only features),
  computed once per (graph, sigma) -- sampling N schedules then costs only the dynamic part -- and
  a **dynamic** part (``dynamic_layers`` layers) over the static embedding plus the state features
  at every step.
- The forward head scores each (ready node, lane) pair from the node's embedding, a projection of
  the pair features and the mean embedding; the backward head scores removable nodes; the log Z
  head (trajectory balance only) reads the mean static embedding and the condition.
- One network serves every lane count up to :data:`.features.MAX_LANES` and both tasks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tvm_sched.solvers.gflownet.features import (
    COND_FEATURES,
    DYNAMIC_FEATURES,
    NUM_RELATIONS,
    PAIR_FEATURES,
    STATIC_FEATURES,
)

__all__ = ["ModelConfig", "FiLMMLP", "TopoLayer", "Topoformer", "PolicyNet"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the policy network (stored in every checkpoint)."""

    #: Embedding width (a multiple of ``4 * heads_per_relation``).
    dim: int = 32
    #: Attention heads per DAG relation (4 relations).
    heads_per_relation: int = 1
    #: Layers of the static (once per graph) and dynamic (every step) encoders.
    static_layers: int = 2
    dynamic_layers: int = 1
    #: Hidden width of every MLP, as a multiple of ``dim``.
    mlp_mult: int = 2
    #: Width of the conditioning embedding.
    cond_dim: int = 16

    def to_dict(self) -> dict:
        return asdict(self)


class FiLMMLP(nn.Module):
    """Two-layer MLP whose hidden layer is modulated by the condition (FiLM)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, cond_dim: int):
        super().__init__()
        self.inp = nn.Linear(d_in, d_hidden)
        self.film = nn.Linear(cond_dim, 2 * d_hidden)
        self.out = nn.Linear(d_hidden, d_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # c is one vector per call, so FiLM folds into the first layer's weights:
        # (W x + b) * (1 + gamma) + beta = (diag(1 + gamma) W) x + (b * (1 + gamma) + beta).
        gamma, beta = self.film(c).chunk(2, dim=-1)
        scale = 1 + gamma
        h = F.linear(x, self.inp.weight * scale[:, None], self.inp.bias * scale + beta)
        return self.out(F.relu(h))


class TopoLayer(nn.Module):
    """One pre-LN transformer layer with DAG-relation attention masks and a FiLM MLP."""

    def __init__(self, dim: int, heads_per_relation: int, mlp_mult: int, cond_dim: int):
        super().__init__()
        self.heads = NUM_RELATIONS * heads_per_relation
        if dim % self.heads:
            raise ValueError(f"dim {dim} is not a multiple of {self.heads} heads")
        self.hpr = heads_per_relation
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = FiLMMLP(dim, mlp_mult * dim, dim, cond_dim)

    def forward(self, x: torch.Tensor, masks: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x: (B, n, dim); masks: (H, n, n) additive float masks (0 or -inf); c: (cond_dim,)."""
        B, n, d = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).reshape(B, n, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=masks[None])
        x = x + self.proj(a.transpose(1, 2).reshape(B, n, d))
        return x + self.mlp(self.ln2(x), c)


class Topoformer(nn.Module):
    """A stack of :class:`TopoLayer` with a final LayerNorm."""

    def __init__(self, cfg: ModelConfig, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            TopoLayer(cfg.dim, cfg.heads_per_relation, cfg.mlp_mult, cfg.cond_dim)
            for _ in range(layers))
        self.ln = nn.LayerNorm(cfg.dim)

    def forward(self, x, masks, c):
        for layer in self.layers:
            x = layer(x, masks, c)
        return self.ln(x)


class PolicyNet(nn.Module):
    """Shared encoder with P_F, P_B and log Z heads (see the module docstring)."""

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        d, hid, cd = cfg.dim, cfg.mlp_mult * cfg.dim, cfg.cond_dim
        self.cond = nn.Sequential(nn.Linear(COND_FEATURES, cd), nn.ReLU(), nn.Linear(cd, cd))
        self.static_in = nn.Linear(STATIC_FEATURES, d)
        self.static_enc = Topoformer(cfg, cfg.static_layers)
        self.dyn_in = FiLMMLP(DYNAMIC_FEATURES, hid, d, cd)
        self.dyn_enc = Topoformer(cfg, cfg.dynamic_layers)
        self.pair_in = FiLMMLP(PAIR_FEATURES, hid, d, cd)
        self.pf = FiLMMLP(d, hid, 1, cd)
        self.pb = FiLMMLP(d, hid, 1, cd)
        self.log_z = FiLMMLP(d, hid, 2, cd)

    def embed_condition(self, cond_raw: torch.Tensor) -> torch.Tensor:
        return self.cond(cond_raw)

    def attention_masks(self, relations: torch.Tensor) -> torch.Tensor:
        """Relation masks (R, n, n) bool -> additive per-head masks (H, n, n) float32."""
        m = relations.repeat_interleave(self.cfg.heads_per_relation, dim=0)
        zero = torch.zeros(m.shape, dtype=torch.float32, device=m.device)
        return zero.masked_fill(~m, float("-inf"))

    def encode_static(self, static: torch.Tensor, masks: torch.Tensor,
                      c: torch.Tensor) -> torch.Tensor:
        """(n, STATIC) -> (1, n, dim): computed once per graph and condition.

        ``masks`` are the additive masks of :meth:`attention_masks`.
        """
        return self.static_enc(self.static_in(static)[None], masks, c)

    def forward(self, h_static: torch.Tensor, masks: torch.Tensor, c: torch.Tensor,
                node: torch.Tensor, pair: torch.Tensor,
                ready_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward logits (B, R, m) of the nodes ``ready_idx`` (B, R) and backward logits (B, n).

        ``pair`` holds the pair features of those nodes, (B, R, m, PAIR_FEATURES): the forward
        head runs on the (few) ready nodes only, the costliest part otherwise.
        """
        x = h_static + self.dyn_in(node, c)
        h = self.dyn_enc(x, masks, c)
        g = h.mean(dim=1)
        hr = h.gather(1, ready_idx[:, :, None].expand(-1, -1, h.shape[2]))
        z = hr[:, :, None, :] + self.pair_in(pair, c) + g[:, None, None, :]
        return self.pf(z, c).squeeze(-1), self.pb(h, c).squeeze(-1)

    def log_partition(self, h_static: torch.Tensor, c: torch.Tensor,
                      sigma: float) -> torch.Tensor:
        """Learned log Z of (graph, condition), a scalar (trajectory balance).

        Parametrised as ``a / sigma + b``: the log-reward scales with ``1 / sigma``, and so does
        the log-partition, which would otherwise span three orders of magnitude.
        """
        a, b = self.log_z(h_static.mean(dim=1), c).reshape(2)
        return a / sigma + b * math.log(1.0 + 1.0 / sigma)

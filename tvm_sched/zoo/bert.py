"""A small BERT encoder (Devlin et al. 2019) written like Hugging Face ``transformers``'
``BertModel``, without depending on it.

What makes it different from the zoo's ``transformer``: three integer inputs
(``input_ids``, ``token_type_ids``, ``attention_mask``, all int64, as a tokenizer gives them),
three embedding lookups (``take``) summed and normalised, and an additive attention mask built
from an input, ``(1 - mask[:, None, None, :].float()) * -1e4``, broadcast over heads and query
positions. Each layer is post-norm self-attention (separate query/key/value projections, scaled
dot products, softmax) and a GELU feed-forward block; the pooler reads the first token through
``tanh`` and a classifier head follows. ``forward`` returns ``(sequence_output, logits)``.

:func:`bert_inputs` makes the example inputs from torch's (seeded) generator: ids in
``[1, vocab)`` (0 is padding), two segments (token types 0 then 1), and a padding mask of ones
then zeros, so the mask really removes keys.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BERT", "bert_inputs"]


class SelfAttention(nn.Module):
    """Multi-head self-attention with an additive mask, then the output projection, the residual
    and LayerNorm (``BertAttention``)."""

    def __init__(self, d: int, heads: int, eps: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"hidden size {d} is not a multiple of {heads} heads")
        self.heads, self.head_dim = heads, d // heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.dense = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d, eps=eps)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask
        ctx = torch.softmax(scores, dim=-1) @ v
        b, _, n, _ = ctx.shape
        ctx = ctx.permute(0, 2, 1, 3).reshape(b, n, self.heads * self.head_dim)
        return self.norm(self.dense(ctx) + x)


class Layer(nn.Module):
    """One encoder layer: attention, then ``d -> ffn -> d`` with GELU, residual, LayerNorm."""

    def __init__(self, d: int, heads: int, ffn: int, eps: float):
        super().__init__()
        self.attention = SelfAttention(d, heads, eps)
        self.intermediate = nn.Linear(d, ffn)
        self.output = nn.Linear(ffn, d)
        self.norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.attention(x, mask)
        return self.norm(self.output(nn.functional.gelu(self.intermediate(h))) + h)


class BERT(nn.Module):
    """Embeddings, ``layers`` encoder layers, the pooler and a classifier.

    Parameters
    ----------
    vocab, d, heads, ffn, layers
        Vocabulary, hidden size, attention heads, feed-forward width, encoder layers.
    max_len
        Positions the position embedding holds (at least the sequence length).
    types
        Token types (segments).
    classes
        Outputs of the classifier on the pooled first token.
    """

    def __init__(self, vocab: int = 64, d: int = 32, heads: int = 4, ffn: int = 64,
                 layers: int = 2, max_len: int = 32, types: int = 2, classes: int = 2,
                 eps: float = 1e-12):
        super().__init__()
        self.word = nn.Embedding(vocab, d)
        self.position = nn.Embedding(max_len, d)
        self.token_type = nn.Embedding(types, d)
        self.embed_norm = nn.LayerNorm(d, eps=eps)
        self.register_buffer("position_ids", torch.arange(max_len)[None, :], persistent=False)
        self.layers = nn.ModuleList(Layer(d, heads, ffn, eps) for _ in range(layers))
        self.pooler = nn.Linear(d, d)
        self.classifier = nn.Linear(d, classes)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = input_ids.shape[1]
        x = (self.word(input_ids) + self.token_type(token_type_ids)
             + self.position(self.position_ids[:, :n]))
        x = self.embed_norm(x)
        # (batch, 1, 1, keys): 0 where a key is a token, -1e4 where it is padding
        mask = (1.0 - attention_mask[:, None, None, :].float()) * -1e4
        for layer in self.layers:
            x = layer(x, mask)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return x, self.classifier(pooled)


def bert_inputs(length: int, vocab: int, pad: int) -> tuple[torch.Tensor, ...]:
    """``(input_ids, token_type_ids, attention_mask)`` of shape (1, ``length``), int64.

    Ids of tokens are drawn uniformly from ``[1, vocab)`` with torch's current generator (every
    id is a valid row of a ``vocab``-row embedding); the first half
    of the tokens is segment 0 and the rest segment 1; the last ``pad`` positions are padding
    (mask 0, id 0, segment 0).
    """
    if not 0 <= pad < length:
        raise ValueError(f"pad must be in [0, {length}), got {pad}")
    ids = torch.randint(1, vocab, (1, length), dtype=torch.int64)
    types = torch.zeros(1, length, dtype=torch.int64)
    types[:, length // 2:] = 1
    mask = torch.ones(1, length, dtype=torch.int64)
    if pad:
        ids[:, -pad:] = 0
        types[:, -pad:] = 0
        mask[:, -pad:] = 0
    return ids, types, mask

"""Irregularly wired zoo models: RandWire (Xie et al. 2019), a NASNet-style cell stack, and a
small transformer encoder."""

from __future__ import annotations

import torch
from torch import nn

from tvm_sched.zoo.cnn import conv_bn


class RandWireNode(nn.Module):
    """A RandWire node: weighted sum of inputs (sigmoid weights) → ReLU → conv → BN."""

    def __init__(self, fan_in: int, c: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(max(fan_in, 1)))
        self.op = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )

    def forward(self, inputs):
        w = torch.sigmoid(self.w)
        x = inputs[0] * w[0]
        for i in range(1, len(inputs)):
            x = x + inputs[i] * w[i]
        return self.op(x)


class RandWire(nn.Module):
    """A Watts–Strogatz graph (seeded) oriented low→high index into a DAG of RandWire nodes.

    Nodes without predecessors read the stem output; the outputs of sink nodes are averaged.
    """

    def __init__(
        self,
        nodes: int = 16,
        k: int = 4,
        p: float = 0.75,
        c: int = 8,
        seed: int = 0,
        classes: int = 10,
    ):
        super().__init__()
        import networkx as nx

        g = nx.connected_watts_strogatz_graph(nodes, k, p, seed=seed)
        self.preds = [sorted(u for u in g.neighbors(v) if u < v) for v in range(nodes)]
        succ = {u for v in range(nodes) for u in self.preds[v]}
        self.sinks = [v for v in range(nodes) if v not in succ]
        self.stem = conv_bn(3, c, 3, 2)
        self.nodes = nn.ModuleList(RandWireNode(len(p_), c) for p_ in self.preds)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for v, node in enumerate(self.nodes):
            outs.append(node([outs[u] for u in self.preds[v]] if self.preds[v] else [x]))
        y = outs[self.sinks[0]]
        for v in self.sinks[1:]:
            y = y + outs[v]
        return self.head((y / len(self.sinks)).mean(dim=(2, 3)))


def sep_conv(c: int, k: int) -> nn.Sequential:
    """ReLU → depthwise k×k → pointwise 1×1 → BN."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c),
    )


class NASCell(nn.Module):
    """A NASNet-A-style normal cell: five two-branch combinations of the previous two cell
    outputs (and of earlier combinations), the unused ones concatenated."""

    def __init__(self, c_prev_prev: int, c_prev: int, c: int):
        super().__init__()
        self.pre0 = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_prev_prev, c, 1, bias=False), nn.BatchNorm2d(c)
        )
        self.pre1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c_prev, c, 1, bias=False), nn.BatchNorm2d(c))
        self.s1a, self.s1b = sep_conv(c, 5), sep_conv(c, 3)
        self.s2a, self.s2b = sep_conv(c, 5), sep_conv(c, 3)
        self.s3a = nn.AvgPool2d(3, 1, 1)
        self.s4a, self.s4b = nn.AvgPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1)
        self.s5a = sep_conv(c, 3)
        self.out_channels = 5 * c

    def forward(self, h0, h1):
        h0, h1 = self.pre0(h0), self.pre1(h1)
        a = self.s1a(h1) + self.s1b(h0)
        b = self.s2a(h0) + self.s2b(h0)
        d = self.s3a(h1) + h0
        e = self.s4a(h0) + self.s4b(h0)
        f = self.s5a(h1) + h1
        return torch.cat([a, b, d, e, f], 1)


class NASNet(nn.Module):
    def __init__(self, c: int = 8, cells: int = 3, classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, 2 * c, 3, 2)
        self.cells = nn.ModuleList()
        cpp, cp = 2 * c, 2 * c
        for _ in range(cells):
            cell = NASCell(cpp, cp, c)
            self.cells.append(cell)
            cpp, cp = cp, cell.out_channels
        self.head = nn.Linear(cp, classes)

    def forward(self, x):
        h0 = h1 = self.stem(x)
        for cell in self.cells:
            h0, h1 = h1, cell(h0, h1)
        return self.head(h1.mean(dim=(2, 3)))


class Transformer(nn.Module):
    """A small post-norm transformer encoder (batch-first) with a classification head."""

    def __init__(
        self, d: int = 32, heads: int = 4, layers: int = 2, vocab: int = 64, classes: int = 10
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))

"""A DARTS network: a stack of searched normal and reduction cells (random weights).

Written from the description in Liu, Simonyan and Yang, "DARTS: Differentiable Architecture
Search", ICLR 2019 (arXiv 1806.09055), sections 2.1 and 3.1 and the cells of its figures 4 and 5
(the second-order search on CIFAR-10):

- A cell is a DAG of two input nodes (the outputs of the two previous cells, each first brought
  to ``c`` channels by ReLU-1x1 conv-BN, or by a factorized reduction when the earlier cell was at
  twice the resolution), four intermediate nodes, each the sum of two operations applied to
  earlier nodes, and an output node that concatenates the four intermediate nodes (``4c``
  channels).
- Operations: separable convolutions (ReLU, depthwise k x k, pointwise 1x1, BN -- applied
  twice), dilated separable convolutions (ReLU, depthwise k x k with dilation 2, pointwise, BN),
  3x3 max pooling, identity. In a reduction cell the operations that read the cell's inputs
  use stride 2 (an identity on an input becomes a factorized reduction).
- The network: a 3x3 conv stem (``3c`` channels here), ``cells`` cells with reduction cells at
  1/3 and 2/3 of the depth (each doubles ``c``), global average pooling and a linear classifier.

The searched genotype (an operation and the node it reads, per intermediate node):

- normal cell: node 2 = sep3x3(in0) + sep3x3(in1); node 3 = sep3x3(in0) + sep3x3(in1);
  node 4 = sep3x3(in1) + identity(in0); node 5 = identity(in0) + dil3x3(node 2);
- reduction cell: node 2 = max3x3(in0) + max3x3(in1); node 3 = identity(node 2) + max3x3(in1);
  node 4 = max3x3(in0) + identity(node 2); node 5 = identity(node 2) + max3x3(in1).

Five separable convolutions of a normal cell are independent of each other: the operator graph
is wide, which is what inter-operator parallelism needs.
"""

from __future__ import annotations

import torch
from torch import nn

#: (operation, input node) pairs, two per intermediate node; inputs 0, 1 are the cell's inputs.
NORMAL = (
    ("sep3", 0), ("sep3", 1),
    ("sep3", 0), ("sep3", 1),
    ("sep3", 1), ("skip", 0),
    ("skip", 0), ("dil3", 2),
)
REDUCE = (
    ("max3", 0), ("max3", 1),
    ("skip", 2), ("max3", 1),
    ("max3", 0), ("skip", 2),
    ("skip", 2), ("max3", 1),
)


def relu_conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1) -> nn.Sequential:
    """ReLU → k×k conv → BN (DARTS's order for convolutional operations)."""
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)
    )


def dil_conv(c: int, k: int, stride: int, dilation: int) -> nn.Sequential:
    """ReLU → depthwise k×k (dilated) → pointwise 1×1 → BN."""
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, k, stride, pad, dilation=dilation, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c),
    )


def sep_conv(c: int, k: int, stride: int) -> nn.Sequential:
    """A DARTS separable convolution: the depthwise-pointwise unit applied twice."""
    return nn.Sequential(dil_conv(c, k, stride, 1), dil_conv(c, k, 1, 1))


class FactorizedReduce(nn.Module):
    """Halve the resolution: two 1×1 stride-2 convs on grids offset by one pixel, concatenated."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.a = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.b = nn.Conv2d(cin, cout - cout // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.a(x), self.b(x[:, :, 1:, 1:])], 1))


def _operation(kind: str, c: int, stride: int) -> nn.Module:
    if kind == "sep3":
        return sep_conv(c, 3, stride)
    if kind == "dil3":
        return dil_conv(c, 3, stride, 2)
    if kind == "max3":
        return nn.MaxPool2d(3, stride, 1)
    if kind == "skip":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    raise ValueError(f"unknown DARTS operation {kind!r}")


class Cell(nn.Module):
    """A normal or reduction cell of the genotype above; output channels ``4 * c``."""

    def __init__(self, c_prev_prev: int, c_prev: int, c: int, *, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.pre0 = (FactorizedReduce(c_prev_prev, c) if reduction_prev
                     else relu_conv_bn(c_prev_prev, c))
        self.pre1 = relu_conv_bn(c_prev, c)
        genotype = REDUCE if reduction else NORMAL
        self.inputs = [node for _, node in genotype]
        self.ops = nn.ModuleList(
            _operation(kind, c, 2 if reduction and node < 2 else 1) for kind, node in genotype
        )
        self.out_channels = 4 * c

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(0, len(self.ops), 2):
            a = self.ops[i](states[self.inputs[i]])
            b = self.ops[i + 1](states[self.inputs[i + 1]])
            states.append(a + b)
        return torch.cat(states[2:], 1)


class DARTS(nn.Module):
    """Stem, ``cells`` cells (reductions at 1/3 and 2/3 of the depth), pooling, classifier.

    Parameters
    ----------
    c
        Channels per intermediate node in the first cells (doubled at each reduction).
    cells
        Number of cells (at least 3, so that both reductions happen).
    classes
        Classifier outputs.
    """

    def __init__(self, c: int = 8, cells: int = 5, classes: int = 10):
        super().__init__()
        if cells < 3:
            raise ValueError(f"DARTS needs at least 3 cells, got {cells}")
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(3 * c))
        reductions = {cells // 3, 2 * cells // 3}
        self.cells = nn.ModuleList()
        cpp, cp, reduction_prev = 3 * c, 3 * c, False
        for i in range(cells):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell = Cell(cpp, cp, c, reduction=reduction, reduction_prev=reduction_prev)
            self.cells.append(cell)
            cpp, cp, reduction_prev = cp, cell.out_channels, reduction
        self.head = nn.Linear(cp, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1.mean(dim=(2, 3)))

"""HRNet: parallel convolution branches at several resolutions, fused repeatedly (random weights).

Written from the description in Wang, Sun, Cheng, Jiang, Deng, Zhao, Liu, Mu, Tan, Wang, Liu,
Xiao, "Deep High-Resolution Representation Learning for Visual Recognition", IEEE TPAMI 2020
(arXiv 1908.07919; first as Sun et al., CVPR 2019), section 3:

- A stem of two stride-2 3x3 convolutions brings the input to 1/4 resolution (``stem_strides``;
  the zoo's sizes use one, on smaller inputs); stage 1 is a chain of bottleneck residual units
  at the highest resolution, then a 3x3 convolution gives the first branch ``width`` channels.
- Stage s (s = 2, 3, 4) runs s branches in parallel, branch r at 1/2^r of the highest resolution
  with ``2^r * width`` channels. A new branch is made here from the previous lowest-resolution
  branch by a stride-2 3x3 convolution with BN and ReLU (the transition).
- A stage repeats a modularized block: every branch runs ``blocks`` basic residual units (two
  3x3 convolutions) on its own, then a multi-resolution fusion gives every output branch the sum
  of all input branches brought to its resolution and width: itself unchanged; a higher-
  resolution input by stride-2 3x3 convolutions (one per halving, with BN; ReLU between them);
  a lower-resolution input by bilinear upsampling and a 1x1 convolution with BN (here the
  convolution and BN come first: both are per-pixel affine maps and bilinear weights sum to one,
  so the order does not change the result, and convolving the smaller map is cheaper); then a
  ReLU.
- The representation head of HRNetV2: the lower-resolution branches upsampled (bilinear) to the
  highest resolution and concatenated; here followed by global average pooling and a linear
  classifier (no 1x1 mixing convolution: with TVM's untuned kernels a wide 1x1 convolution at the
  highest resolution alone costs more than all branches together, and it is one chain link).

The branches of a block touch each other only at the fusions, and with ``2^r * width`` channels
at 1/2^r resolution each branch's 3x3 convolutions cost about the same FLOPs: the operator graph
is several balanced chains side by side.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from tvm_sched.zoo.cnn import conv_bn


class BasicUnit(nn.Module):
    """Residual unit: 3x3 conv-BN-ReLU, 3x3 conv-BN, plus the input, ReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c, 3), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class Bottleneck(nn.Module):
    """Residual unit: 1x1 conv (c/4), 3x3 conv, 1x1 conv (c), each with BN, plus the input."""

    def __init__(self, cin: int, c: int):
        super().__init__()
        mid = max(c // 4, 1)
        self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, 3),
                                  nn.Conv2d(mid, c, 1, bias=False), nn.BatchNorm2d(c))
        self.short = (nn.Identity() if cin == c
                      else nn.Sequential(nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def _down(cin: int, cout: int, steps: int) -> nn.Sequential:
    """``steps`` stride-2 3x3 convs with BN (ReLU between them, not after the last)."""
    layers: list[nn.Module] = []
    for i in range(steps):
        last = i == steps - 1
        layers += [nn.Conv2d(cin, cout if last else cin, 3, 2, 1, bias=False),
                   nn.BatchNorm2d(cout if last else cin)]
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Up(nn.Module):
    """1x1 conv with BN, then bilinear upsampling by ``2^steps``."""

    def __init__(self, cin: int, cout: int, steps: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.scale = 2 ** steps

    def forward(self, x):
        return functional.interpolate(self.proj(x), scale_factor=self.scale, mode="bilinear",
                                      align_corners=False)


class Fusion(nn.Module):
    """Multi-resolution fusion of ``n`` branches: output r = ReLU(sum over inputs brought to r)."""

    def __init__(self, widths: list[int]):
        super().__init__()
        n = len(widths)
        self.paths = nn.ModuleList()
        for r in range(n):
            row = nn.ModuleList()
            for i in range(n):
                if i == r:
                    row.append(nn.Identity())
                elif i < r:
                    row.append(_down(widths[i], widths[r], r - i))
                else:
                    row.append(_Up(widths[i], widths[r], i - r))
            self.paths.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for row in self.paths:
            y = row[0](xs[0])
            for path, x in zip(row[1:], xs[1:], strict=True):
                y = y + path(x)
            outs.append(torch.relu(y))
        return outs


class HRModule(nn.Module):
    """A modularized block: ``blocks`` basic units per branch, then a fusion."""

    def __init__(self, widths: list[int], blocks: int):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicUnit(w) for _ in range(blocks))) for w in widths
        )
        self.fuse = Fusion(widths)

    def forward(self, xs):
        return self.fuse([b(x) for b, x in zip(self.branches, xs, strict=True)])


class HRNet(nn.Module):
    """HRNet classifier with ``len(modules) + 1`` stages.

    Parameters
    ----------
    width
        Channels of the highest-resolution branch (``C`` in the paper); branch r has
        ``2^r * width``.
    modules
        Modularized blocks per multi-branch stage (stage 2, 3, ...): ``(1, 4, 3)`` in the paper.
    blocks
        Basic residual units per branch in each modularized block (4 in the paper).
    stage1
        Bottleneck units of stage 1 (4 in the paper).
    stem_strides
        Stride-2 convolutions of the stem (2 in the paper).
    classes
        Classifier outputs.
    """

    def __init__(self, width: int = 8, modules: tuple[int, ...] = (1, 1, 1), blocks: int = 1,
                 stage1: int = 1, stem_strides: int = 1, classes: int = 10):
        super().__init__()
        stem_c = 2 * width
        self.stem = nn.Sequential(
            *(conv_bn(3 if i == 0 else stem_c, stem_c, 3, 2) for i in range(stem_strides))
        )
        self.stage1 = nn.Sequential(
            *(Bottleneck(stem_c if i == 0 else 4 * width, 4 * width) for i in range(stage1))
        )
        self.first = conv_bn(4 * width if stage1 else stem_c, width, 3)
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        widths = [width]
        for count in modules:
            self.transitions.append(conv_bn(widths[-1], 2 * widths[-1], 3, 2))
            widths = widths + [2 * widths[-1]]
            self.stages.append(nn.Sequential(*(HRModule(widths, blocks) for _ in range(count))))
        self.ups = nn.ModuleList(nn.Upsample(scale_factor=2 ** r, mode="bilinear",
                                             align_corners=False) for r in range(1, len(widths)))
        self.head = nn.Linear(sum(widths), classes)

    def forward(self, x):
        xs = [self.first(self.stage1(self.stem(x)))]
        for transition, stage in zip(self.transitions, self.stages, strict=True):
            xs = xs + [transition(xs[-1])]
            for module in stage:
                xs = module(xs)
        y = torch.cat([xs[0]] + [up(t) for up, t in zip(self.ups, xs[1:], strict=True)], 1)
        return self.head(y.mean(dim=(2, 3)))

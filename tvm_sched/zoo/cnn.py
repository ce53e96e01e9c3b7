"""Convolutional zoo models: Inception, ResNet, U-Net, DenseNet (small, random weights)."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv → BatchNorm → ReLU with 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class InceptionBlock(nn.Module):
    """GoogLeNet-style block: 1x1, 1x1→3x3, 1x1→5x5 and pool→1x1 branches, concatenated."""

    def __init__(self, cin: int, c: int):
        super().__init__()
        self.b1 = conv_bn(cin, c, 1)
        self.b2 = nn.Sequential(conv_bn(cin, c, 1), conv_bn(c, c, 3))
        self.b3 = nn.Sequential(conv_bn(cin, c // 2, 1), conv_bn(c // 2, c, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, c, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


class Inception(nn.Module):
    def __init__(self, c: int = 8, blocks: int = 3, classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, 2 * c, 3, 2)
        layers, cin = [], 2 * c
        for _ in range(blocks):
            layers.append(InceptionBlock(cin, c))
            cin = 4 * c
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(cin, cout, 3, stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, widths=(8, 16, 32), classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, widths[0])
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(self.layers(self.stem(x)).mean(dim=(2, 3)))


class UNet(nn.Module):
    """Two-level U-Net with skip connections (concatenation) and transposed-conv upsampling."""

    def __init__(self, c: int = 8, classes: int = 2):
        super().__init__()
        self.e1 = nn.Sequential(conv_bn(3, c), conv_bn(c, c))
        self.e2 = nn.Sequential(conv_bn(c, 2 * c), conv_bn(2 * c, 2 * c))
        self.mid = nn.Sequential(conv_bn(2 * c, 4 * c), conv_bn(4 * c, 4 * c))
        self.u2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.d2 = nn.Sequential(conv_bn(4 * c, 2 * c), conv_bn(2 * c, 2 * c))
        self.u1 = nn.ConvTranspose2d(2 * c, c, 2, 2)
        self.d1 = nn.Sequential(conv_bn(2 * c, c), conv_bn(c, c))
        self.out = nn.Conv2d(c, classes, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(self.pool(a))
        m = self.mid(self.pool(b))
        y = self.d2(torch.cat([self.u2(m), b], 1))
        y = self.d1(torch.cat([self.u1(y), a], 1))
        return self.out(y)


class DenseBlock(nn.Module):
    """DenseNet block: every layer (BN-ReLU-1x1-BN-ReLU-3x3) sees all earlier feature maps."""

    def __init__(self, cin: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList()
        for i in range(layers):
            c = cin + i * growth
            self.layers.append(
                nn.Sequential(
                    nn.BatchNorm2d(c),
                    nn.ReLU(),
                    nn.Conv2d(c, 2 * growth, 1, bias=False),
                    nn.BatchNorm2d(2 * growth),
                    nn.ReLU(),
                    nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False),
                )
            )

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class DenseNet(nn.Module):
    def __init__(self, c: int = 16, growth: int = 8, layers: int = 6, classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, c, 3, 2)
        self.block = DenseBlock(c, growth, layers)
        self.head = nn.Linear(c + layers * growth, classes)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean(dim=(2, 3)))

"""Shared trunks of the attribute net: normalised crops ``(N, 3, S, S)`` -> features ``(N, C)``.

Three families, chosen by ``MODEL.TRUNK``; ``width`` is the channel count of the first stage and
later stages double it. Every trunk halves the resolution four times (S=64 -> 4 x 4) and ends
with global average pooling, so any ``S >= 16`` works. ``out_channels`` is ``8 * width``.

* ``depthwise``: depthwise-separable convolutions (3x3 depthwise + 1x1 pointwise), in the spirit
  of the lightweight multi-task face CNNs (about 5x fewer parameters and 4x faster than a ResNet
  of the same width; see ``benchmark_attribute_net`` for measured figures).
* ``resnet``: a ResNet-18-style trunk (basic blocks, two per stage).
* ``gra``: the ResNet trunk with a Gated Residual Attention block after the first block of each of
  the first three stages (GRA_Net): ``out = (g + (1 - g) * K(X)) * F(X)``, ``F`` the residual
  trunk branch, ``K`` a bottom-up / top-down soft mask ending in a sigmoid, ``g = sigmoid(gate)``
  a trainable scalar (starts at 0.5).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

TRUNKS = ("depthwise", "resnet", "gra")


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DepthwiseSeparableBlock(nn.Module):
    """3x3 depthwise + BN + ReLU, 1x1 pointwise + BN; a residual connection when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.depthwise = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pointwise = _conv_bn(cin, cout, 1, relu=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x))
        return F.relu(y + x if self.residual else y)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity or 1x1 projection shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3, relu=False)
        self.shortcut = (
            nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride, relu=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class SoftMaskBranch(nn.Module):
    """Bottom-up / top-down soft mask ``K(X)`` of a residual attention block, values in (0, 1).

    ``depth`` times: max-pool /2 then a basic block (bottom-up); then as many bilinear upsamplings
    with skip connections (top-down); then BN-ReLU-1x1 conv twice and a sigmoid.
    """

    def __init__(self, channels: int, depth: int):
        super().__init__()
        self.down = nn.ModuleList(BasicBlock(channels, channels) for _ in range(depth))
        self.skip = nn.ModuleList(BasicBlock(channels, channels) for _ in range(depth - 1))
        self.up = nn.ModuleList(BasicBlock(channels, channels) for _ in range(depth - 1))
        self.out = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = []
        y = x
        for i, block in enumerate(self.down):
            y = block(F.max_pool2d(y, 3, 2, 1))
            if i < len(self.skip):
                skips.append(self.skip[i](y))
        for block, s in zip(self.up, reversed(skips)):
            y = block(F.interpolate(y, size=s.shape[-2:], mode="bilinear", align_corners=False) + s)
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.out(y))


class GatedResidualAttention(nn.Module):
    """GRA block: ``(g + (1 - g) * K(X)) * F(X)`` with ``g = sigmoid(gate)`` a trainable scalar.

    ``F`` is a basic block (the trunk branch), ``K`` a :class:`SoftMaskBranch`. With ``g -> 1``
    the block is a plain residual block; with ``g -> 0`` it is pure attention masking.
    """

    def __init__(self, channels: int, mask_depth: int):
        super().__init__()
        self.trunk = BasicBlock(channels, channels)
        self.mask = SoftMaskBranch(channels, mask_depth)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate)
        return (g + (1.0 - g) * self.mask(x)) * self.trunk(x)


class _Trunk(nn.Module):
    """Stem (3x3 conv stride 2) + stages + global average pooling -> (N, out_channels)."""

    out_channels: int

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], out_channels: int):
        super().__init__()
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)


def depthwise_trunk(width: int = 32) -> _Trunk:
    """Depthwise-separable trunk; stages ``width x (1, 2, 4, 8)`` with (1, 2, 2, 3) blocks."""
    chans = [width, 2 * width, 4 * width, 8 * width]
    stages, cin = [], width
    for i, (c, n) in enumerate(zip(chans, (1, 2, 2, 3))):
        blocks = [DepthwiseSeparableBlock(cin, c, stride=1 if i == 0 else 2)]
        blocks += [DepthwiseSeparableBlock(c, c) for _ in range(n - 1)]
        stages.append(nn.Sequential(*blocks))
        cin = c
    return _Trunk(_conv_bn(3, width, 3, 2), stages, chans[-1])


def resnet_trunk(width: int = 32, attention: bool = False) -> _Trunk:
    """ResNet-18-style trunk (two basic blocks per stage); ``attention`` makes it the GRA trunk.

    With attention the second block of stages 1-3 is a :class:`GatedResidualAttention` block
    (soft-mask depths 2, 2, 1, as the feature maps shrink).
    """
    chans = [width, 2 * width, 4 * width, 8 * width]
    stages, cin = [], width
    for i, c in enumerate(chans):
        first = BasicBlock(cin, c, stride=1 if i == 0 else 2)
        second = GatedResidualAttention(c, (2, 2, 1)[i]) if attention and i < 3 else BasicBlock(c, c)
        stages.append(nn.Sequential(first, second))
        cin = c
    return _Trunk(_conv_bn(3, width, 3, 2), stages, chans[-1])


def build_trunk(name: str, width: int) -> _Trunk:
    """``name`` in :data:`TRUNKS` -> trunk module with ``out_channels == 8 * width``."""
    if width < 1:
        raise ValueError(f"trunk width must be >= 1, got {width}")
    if name == "depthwise":
        return depthwise_trunk(width)
    if name == "resnet":
        return resnet_trunk(width)
    if name == "gra":
        return resnet_trunk(width, attention=True)
    raise ValueError(f"unknown trunk {name!r}; expected one of {TRUNKS}")

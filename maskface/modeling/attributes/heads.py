"""Heads of the attribute net: trunk features ``(N, C)`` -> per-task outputs.

Both age heads describe a face's age as a discrete distribution: ``age_values`` (years) with
probabilities ``age_probs``. From it come, identically for both heads (:func:`age_summary`):
the estimate ``age = sum(p * v)`` (years), the spread ``age_std = sqrt(sum(p * (v - age)^2))``
(years) and the Adience group probabilities (each value's mass goes to its group).

* :class:`DexAgeHead` (DEX): classification over ``num_bins`` age classes whose centres are spread
  evenly over 0..100 years (101 = one per year); ``age_values`` are the fixed centres.
* :class:`LabelDivisionAgeHead` (GRA_Net's "label division"): classification over ``num_ranges``
  equal age ranges of 0..100 years plus, for every range, a regression of the age inside it
  (sigmoid offset x range width); ``age_values`` are the per-face regressed ages, one per range.
  Its spread is the one between ranges' estimates (the within-range uncertainty is not modelled).

Adience groups: :data:`~maskface.data.attributes.ADIENCE_GROUPS`; an age between two groups goes
to the nearest one, a tie (exactly 3, 7, 13.5, 22.5, 35, 45.5 or 56.5 years) to the younger;
ages below 0 / above 100 go to the first / last group.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from maskface.data.attributes import ADIENCE_GROUPS

MAX_AGE = 100.0  # years; the age heads cover 0..MAX_AGE
AGE_GROUP_NAMES = tuple(f"{lo}-{hi}" for lo, hi in ADIENCE_GROUPS)
# Midpoints of the gaps between consecutive groups: the group boundaries.
_GROUP_BOUNDARIES = tuple((a[1] + b[0]) / 2.0 for a, b in zip(ADIENCE_GROUPS[:-1], ADIENCE_GROUPS[1:]))


def age_group_index(age: torch.Tensor) -> torch.Tensor:
    """Ages in years (any shape, float) -> index into :data:`AGE_GROUP_NAMES` (int64, same shape).

    Nearest group; a tie goes to the younger group (see the module docstring).
    """
    bounds = torch.tensor(_GROUP_BOUNDARIES, dtype=age.dtype, device=age.device)
    return torch.bucketize(age.contiguous(), bounds, right=False)


def age_summary(values: torch.Tensor, probs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Expected age, spread and Adience-group probabilities of a discrete age distribution.

    Args:
        values: ``(K,)`` or ``(N, K)`` ages in years.
        probs: ``(N, K)`` probabilities (rows sum to 1).

    Returns:
        ``age`` ``(N,)`` years, ``age_std`` ``(N,)`` years, ``age_group_probs``
        ``(N, len(AGE_GROUP_NAMES))`` (rows sum to 1).
    """
    values = values.float().expand_as(probs)
    probs = probs.float()
    age = (probs * values).sum(dim=1)
    var = (probs * (values - age.unsqueeze(1)) ** 2).sum(dim=1)
    groups = torch.zeros(probs.shape[0], len(AGE_GROUP_NAMES), device=probs.device, dtype=probs.dtype)
    groups.scatter_add_(1, age_group_index(values), probs)
    return {"age": age, "age_std": var.clamp(min=0).sqrt(), "age_group_probs": groups}


def _mlp(in_channels: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, out)
    )


class ClassificationHead(nn.Module):
    """``(N, C)`` -> ``{"<name>_logits": (N, num_classes)}`` (a small MLP; softmax in decode)."""

    def __init__(self, name: str, in_channels: int, num_classes: int, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        self.name = name
        self.mlp = _mlp(in_channels, hidden, num_classes, dropout)

    def forward(self, features: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {f"{self.name}_logits": self.mlp(features).float()}


class DexAgeHead(nn.Module):
    """DEX: ``num_bins`` age classes over 0..100 years.

    Outputs: ``age_logits`` ``(N, K)``, ``age_values`` ``(K,)`` bin centres in years,
    ``age_probs`` ``(N, K)`` softmax.
    """

    kind = "dex"

    def __init__(self, in_channels: int, num_bins: int = 101, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        if num_bins < 2:
            raise ValueError(f"DEX needs at least 2 age bins, got {num_bins}")
        self.mlp = _mlp(in_channels, hidden, num_bins, dropout)
        self.register_buffer("bin_centers", torch.linspace(0.0, MAX_AGE, num_bins), persistent=False)

    def forward(self, features: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = self.mlp(features).float()
        return {"age_logits": logits, "age_values": self.bin_centers, "age_probs": logits.softmax(dim=1)}


class LabelDivisionAgeHead(nn.Module):
    """GRA_Net label division: ``num_ranges`` equal ranges over 0..100 years + regression inside each.

    Outputs: ``age_logits`` ``(N, R)`` range classification, ``age_values`` ``(N, R)`` regressed age
    in years inside each range (``low_r + width_r * sigmoid(offset_r)``), ``age_probs`` ``(N, R)``.
    """

    kind = "label_division"

    def __init__(self, in_channels: int, num_ranges: int = 10, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        if num_ranges < 2:
            raise ValueError(f"label division needs at least 2 age ranges, got {num_ranges}")
        self.num_ranges = num_ranges
        self.mlp = _mlp(in_channels, hidden, 2 * num_ranges, dropout)
        self.register_buffer("range_edges", torch.linspace(0.0, MAX_AGE, num_ranges + 1), persistent=False)

    def forward(self, features: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = self.mlp(features).float()
        logits, offsets = out[:, : self.num_ranges], out[:, self.num_ranges :]
        low, width = self.range_edges[:-1], self.range_edges[1:] - self.range_edges[:-1]
        values = low + width * torch.sigmoid(offsets)
        return {"age_logits": logits, "age_values": values, "age_probs": logits.softmax(dim=1)}


AGE_HEADS = {DexAgeHead.kind: DexAgeHead, LabelDivisionAgeHead.kind: LabelDivisionAgeHead}

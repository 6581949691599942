"""Per-attribute losses, masked: only faces whose attribute is known contribute.

Unknown labels: age ``NaN`` (or negative), gender / emotion ``-1``. A loss over a batch with no
known label is an exact zero that is still connected to the graph (``logits.sum() * 0``), so
``backward()`` works and gives zero gradients. Each loss is the mean over the known faces.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from maskface.modeling.attributes.heads import MAX_AGE


def known_age(age: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: the age is a real number of years (not NaN, not negative)."""
    return torch.isfinite(age) & (age >= 0)


def _zero(like: torch.Tensor) -> torch.Tensor:
    return like.sum() * 0.0


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the faces with ``labels >= 0``; ``logits`` ``(N, C)``, ``labels`` ``(N,)``."""
    known = labels >= 0
    if not known.any():
        return _zero(logits)
    return F.cross_entropy(logits[known], labels[known])


def emotion_loss(logits: torch.Tensor, labels: torch.Tensor, votes: Optional[torch.Tensor] = None,
                 vote_weight: float = 0.0) -> torch.Tensor:
    """Cross-entropy whose target mixes the label with a soft distribution where there is one:
    ``(1 - vote_weight) * one_hot(label) + vote_weight * votes``. Used for emotion (FER+ votes)
    and, through :func:`gender_loss`, for gender (a teacher's probabilities).

    Args:
        logits: ``(N, C)``.
        labels: ``(N,)`` class index, -1 = unknown.
        votes: ``(N, C)`` vote shares (rows sum to 1), rows of zeros = no votes; ``None`` = none.
        vote_weight: in [0, 1]; 0 = the labels alone (plain cross-entropy), 1 = the vote
            distribution alone for faces that have votes.

    A face counts when it has a label or votes; faces with votes but no label use the votes alone.
    """
    if not 0.0 <= vote_weight <= 1.0:
        raise ValueError(f"vote_weight must be in [0, 1], got {vote_weight}")
    if votes is None or vote_weight == 0.0:
        return masked_cross_entropy(logits, labels)
    has_votes = votes.sum(dim=1) > 0
    known = (labels >= 0) | has_votes
    if not known.any():
        return _zero(logits)
    logits, labels, votes, has_votes = logits[known], labels[known], votes[known].float(), has_votes[known]
    hard = F.one_hot(labels.clamp(min=0), logits.shape[1]).float() * (labels >= 0).float().unsqueeze(1)
    w = torch.where(has_votes, torch.where(labels >= 0, vote_weight, 1.0), 0.0).unsqueeze(1)
    target = (1.0 - w) * hard + w * votes
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()


def gender_loss(logits: torch.Tensor, labels: torch.Tensor, soft: Optional[torch.Tensor] = None,
                soft_weight: float = 0.0) -> torch.Tensor:
    """Gender cross-entropy with a teacher's soft labels mixed in (distillation).

    Args:
        logits: ``(N, 2)`` in GENDERS order (female, male).
        labels: ``(N,)`` index into GENDERS, -1 = unknown.
        soft: ``(N,)`` the teacher's probability of "female", NaN = no teacher label; ``None`` = none.
        soft_weight: in [0, 1]; the target of a face with both is ``(1 - soft_weight) * one_hot(label)
            + soft_weight * (p, 1 - p)``; 0 = the labels alone. A face with only a teacher label
            learns from it alone (when ``soft_weight > 0``).
    """
    if soft is None:
        return emotion_loss(logits, labels, None, soft_weight)
    has = torch.isfinite(soft)
    p = torch.where(has, soft, torch.zeros_like(soft)).float().clamp(0.0, 1.0)
    dist = torch.stack([p, 1.0 - p], dim=1) * has.float().unsqueeze(1)
    return emotion_loss(logits, labels, dist, soft_weight)


def gaussian_age_targets(age: torch.Tensor, values: torch.Tensor, sigma: float) -> torch.Tensor:
    """Soft labels over age bins: ``exp(-(v - age)^2 / (2 sigma^2))``, normalised per face.

    Args:
        age: ``(M,)`` years (clamped to 0..100).
        values: ``(K,)`` bin centres in years.
        sigma: years; ``0`` gives a one-hot on the nearest bin.

    Returns:
        ``(M, K)`` rows summing to 1.
    """
    d = values.view(1, -1) - age.clamp(0.0, MAX_AGE).view(-1, 1)
    if sigma <= 0:
        return F.one_hot(d.abs().argmin(dim=1), values.numel()).float()
    return torch.softmax(-0.5 * (d / sigma) ** 2, dim=1)


def dex_age_loss(
    logits: torch.Tensor, values: torch.Tensor, age: torch.Tensor, sigma: float = 2.5, l1_weight: float = 0.0
) -> torch.Tensor:
    """DEX loss: cross-entropy against Gaussian soft labels + ``l1_weight`` x |E[age] - age| (years).

    Args:
        logits: ``(N, K)`` age-bin logits.
        values: ``(K,)`` bin centres in years.
        age: ``(N,)`` true age in years, NaN = unknown.
    """
    known = known_age(age)
    if not known.any():
        return _zero(logits)
    logits, age = logits[known], age[known].float()
    logp = logits.log_softmax(dim=1)
    loss = -(gaussian_age_targets(age, values, sigma) * logp).sum(dim=1).mean()
    if l1_weight > 0:
        expected = (logp.exp() * values.view(1, -1)).sum(dim=1)
        loss = loss + l1_weight * (expected - age.clamp(0.0, MAX_AGE)).abs().mean()
    return loss


def label_division_loss(
    logits: torch.Tensor, values: torch.Tensor, edges: torch.Tensor, age: torch.Tensor, l1_weight: float = 0.0
) -> torch.Tensor:
    """Label-division loss: range cross-entropy + L1 of the true range's regressed age.

    The regression error is divided by the range width (so it is ~[0, 1] like the cross-entropy);
    ``l1_weight`` adds |E[age] - age| in years as for DEX.

    Args:
        logits: ``(N, R)`` range logits.
        values: ``(N, R)`` regressed age in each range, years.
        edges: ``(R + 1,)`` range edges in years.
        age: ``(N,)`` true age in years, NaN = unknown.
    """
    known = known_age(age)
    if not known.any():
        return _zero(logits) + _zero(values)
    logits, values, age = logits[known], values[known], age[known].float().clamp(0.0, MAX_AGE)
    idx = torch.bucketize(age, edges[1:-1], right=True)
    width = (edges[1:] - edges[:-1])[idx]
    inside = values.gather(1, idx.view(-1, 1)).squeeze(1)
    loss = F.cross_entropy(logits, idx) + ((inside - age).abs() / width).mean()
    if l1_weight > 0:
        expected = (logits.softmax(dim=1) * values).sum(dim=1)
        loss = loss + l1_weight * (expected - age).abs().mean()
    return loss

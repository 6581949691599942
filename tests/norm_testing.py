"""Non-trivial batch-norm statistics for tests of norm folding (a fresh norm is the identity, so
folding it would prove nothing)."""

import torch
from torchvision.ops import FrozenBatchNorm2d


@torch.no_grad()
def set_random_norm_stats(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every ``BatchNorm2d`` / ``FrozenBatchNorm2d`` of ``model`` gets random statistics and affine
    terms (scale 0.5-1.5, shift and mean ~N(0, 0.1), variance 0.5-1.5), in place. Returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d)):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model

"""Learning-rate schedule: linear warm-up, then cosine / linear decay to min_lr_ratio (or constant)."""

from __future__ import annotations

import math

from pixsearch_core.training.config import StageConfig


def lr_factor(step: int, total: int, stage: StageConfig) -> float:
    """Multiplier of the base LR at optimizer step `step` (0-based) of `total`."""
    if stage.warmup_steps and step < stage.warmup_steps:
        return (step + 1) / stage.warmup_steps
    if stage.decay == "constant":
        return 1.0
    span = max(1, total - stage.warmup_steps)
    progress = min(1.0, (step - stage.warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if stage.decay == "cosine" else 1.0 - progress
    return stage.min_lr_ratio + (1 - stage.min_lr_ratio) * shape


def make_scheduler(optimizer, total: int, stage: StageConfig):
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda step: lr_factor(step, total, stage))

"""Learning-rate schedule: linear warm-up, then cosine / linear decay to min_lr_ratio (or constant). Used by the
stages (a StageConfig's warmup_steps, decay, min_lr_ratio) and by box-prompted SAM pre-training."""

from __future__ import annotations

import math


def lr_factor(step: int, total: int, warmup_steps: int, decay: str, min_lr_ratio: float) -> float:
    """Multiplier of the base LR at optimizer step `step` (0-based) of `total`."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    span = max(1, total - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress
    return min_lr_ratio + (1 - min_lr_ratio) * shape


def make_scheduler(optimizer, total: int, warmup_steps: int, decay: str, min_lr_ratio: float):
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup_steps, decay, min_lr_ratio))

"""The multimodal projector: vision-tower features -> LM input embeddings (LLaVA-1.5 `mlp2x_gelu`)."""

from __future__ import annotations

import torch
from torch import nn


class MultimodalProjector(nn.Module):
    """Linear -> GELU -> Linear, key-compatible with LLaVA's `multi_modal_projector` (linear_1, linear_2).

    Arguments:
      vision_dim: the vision tower's feature width.
      lm_dim: the language model's hidden size.
    """

    def __init__(self, vision_dim: int, lm_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(vision_dim, lm_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(lm_dim, lm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, N, vision_dim) -> (B, N, lm_dim)."""
        return self.linear_2(self.act(self.linear_1(features.to(self.linear_1.weight.dtype))))

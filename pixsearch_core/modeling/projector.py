"""The multimodal projector: vision-tower features -> LM input embeddings: LLaVA-1.5's `mlp2x_gelu` (default) or
LLaVA-1's `linear` (the LLaVA-Llama-2 "lightning" models that LISA and PLUM are built on)."""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("mlp2x_gelu", "linear")


class MultimodalProjector(nn.Module):
    """Linear -> GELU -> Linear (`mlp2x_gelu`, key-compatible with LLaVA-HF's `multi_modal_projector`: linear_1,
    linear_2), or one Linear (`linear`: linear_1 only).

    Arguments:
      vision_dim: the vision tower's feature width.
      lm_dim: the language model's hidden size.
      kind: "mlp2x_gelu" | "linear".
    """

    def __init__(self, vision_dim: int, lm_dim: int, kind: str = "mlp2x_gelu") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"projector kind {kind!r}; allowed: {', '.join(KINDS)}")
        self.linear_1 = nn.Linear(vision_dim, lm_dim)
        if kind == "mlp2x_gelu":
            self.act = nn.GELU()
            self.linear_2 = nn.Linear(lm_dim, lm_dim)
        self.kind = kind

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, N, vision_dim) -> (B, N, lm_dim)."""
        x = self.linear_1(features.to(self.linear_1.weight.dtype))
        return self.linear_2(self.act(x)) if self.kind == "mlp2x_gelu" else x

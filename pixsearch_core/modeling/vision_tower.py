"""Vision towers: an image batch -> a sequence of visual features per image (frozen in every size).

    ClipVisionTower(clip)          # the paper's: CLIP ViT (HF CLIPVisionModel), layer -2, CLS dropped (LLaVA)
    SamEmbeddingVisionTower(8)     # `mini`: pools the frozen SAM-family image embedding to an 8x8 grid

Each tower says which input it reads (`input_kind`): "pixels" (its own square transform) or "sam_embedding"
(the (B, C, h, w) SAM image embedding the model computes anyway, cached per image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixsearch_core.modeling.preprocess import CLIP_MEAN, CLIP_STD, SquareTransform


class ClipVisionTower(nn.Module):
    """A CLIP vision model's hidden states at `select_layer`, CLS token dropped: (B, 3, S, S) -> (B, N, D).

    Arguments:
      clip: a transformers `CLIPVisionModel`.
      select_layer: which hidden state (LLaVA: -2).
      drop_cls: drop the first (CLS) token (LLaVA's "default" feature select strategy).
    """

    input_kind = "pixels"

    def __init__(
        self, clip: nn.Module, select_layer: int = -2, drop_cls: bool = True, mean=CLIP_MEAN, std=CLIP_STD
    ) -> None:
        super().__init__()
        self.clip = clip
        self.select_layer = select_layer
        self.drop_cls = drop_cls
        self.transform = SquareTransform(clip.config.image_size, mean, std)
        self.feature_dim = clip.config.hidden_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = next(self.clip.parameters()).dtype
        out = self.clip(pixel_values=pixel_values.to(dtype), output_hidden_states=True)
        feats = out.hidden_states[self.select_layer]
        return feats[:, 1:] if self.drop_cls else feats


class SamEmbeddingVisionTower(nn.Module):
    """Average-pools the SAM image embedding (B, C, h, w) to a grid: -> (B, grid*grid, C). No parameters.

    Arguments:
      feature_dim: C, the SAM embedding width (256).
      grid: output grid side; the LM sees grid*grid visual tokens.
    """

    input_kind = "sam_embedding"

    def __init__(self, feature_dim: int = 256, grid: int = 8) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.grid = grid

    def forward(self, sam_embedding: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(sam_embedding, self.grid)
        return pooled.flatten(2).transpose(1, 2)

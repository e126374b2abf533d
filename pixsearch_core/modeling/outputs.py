"""Plain containers returned by PixSearchModel (shapes in the field comments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class PreparedImages:
    """Images as uint8 (H, W, 3) arrays with their content keys (the SAM embedding cache keys)."""

    arrays: list[np.ndarray]
    keys: list[str]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [(a.shape[0], a.shape[1]) for a in self.arrays]

    def __len__(self) -> int:
        return len(self.arrays)


@dataclass
class Prefix:
    """A prompt with the image features spliced in at the placeholder.

    inputs_embeds (B, L, D); attention_mask (B, L) long, 1 = real; text_positions (B, T): where each input token
    sits in the L axis (-1 for padding; the placeholder maps to the LAST image-feature position, so that the logits
    gathered there predict the token after the image); token_ids (B, L): the token at each L position (-1 for image
    features and padding; the copy head's values).
    """

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    text_positions: torch.Tensor
    token_ids: torch.Tensor | None = None


@dataclass
class StepOutput:
    """One language-model step.

    logits (B, T, V) and hidden_states (B, T, D) (last layer) for the T new positions; past_key_values: the HF Cache
    (pass it back); attention_mask (B, past + T): the full mask to extend for the next step.
    """

    logits: torch.Tensor
    hidden_states: torch.Tensor
    past_key_values: Any
    attention_mask: torch.Tensor


@dataclass
class PixSearchOutput:
    """The training forward, in the input-token axis T (image positions removed).

    logits (B, T, V): logits[:, t] predicts input_ids[:, t + 1]; hidden_states (B, T, D); span_logits (B, T, 3);
    spans: per row, (start, end_exclusive) token spans that were segmented; mask_logits: per row, (N_i, H_i, W_i)
    at image resolution, one per span, in span order; iou_scores: per row, (N_i,); teacher_hidden_states (B, T, D)
    from the frozen base LM (LoRA disabled) or None.
    """

    logits: torch.Tensor
    hidden_states: torch.Tensor
    span_logits: torch.Tensor
    spans: list[list[tuple[int, int]]]
    mask_logits: list[torch.Tensor]
    iou_scores: list[torch.Tensor]
    teacher_hidden_states: torch.Tensor | None = None


@dataclass
class MaskPrediction:
    """predict_mask's details: masks (B of (H_i, W_i) bool), logits (B of (H_i, W_i) float), iou (B,),
    has_prompt (B,) bool: False where a row had no span (its mask is empty)."""

    masks: list[torch.Tensor]
    logits: list[torch.Tensor]
    iou: torch.Tensor
    has_prompt: torch.Tensor
    extra: dict = field(default_factory=dict)

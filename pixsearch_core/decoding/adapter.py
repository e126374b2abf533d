"""What the decoder needs from a model, and the request it decodes.

A `DecoderModel` steps a causal LM with a live KV cache:

    out = model.prefill(requests, continuations)   # left-padded prompt (+ image) + continuation tokens
    out = model.extend(out.cache, input_ids, attention_mask, position_ids)
          # input_ids (B, T): each row's new tokens right-aligned, pad slots masked;
          # attention_mask (B, past + T); position_ids (B, T) = cumsum(mask) - 1, contiguous per row
    model.select(cache, index)                      # keep rows `index` (finished rows leave the batch)
    model.predict_mask(request, hidden, continuation) -> (H, W) bool mask of the last entity span, or None

Implementations: `HFCausalLMAdapter` (any Hugging Face causal LM, text only) in `hf.py`; the PixSearch model's
adapter belongs with the model (it adds image features to the prefix and its span tagger + mask decoder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch


@dataclass
class DecodeRequest:
    """One sample to decode: a prompt (text or token ids), an optional image, and the question for baselines."""

    sample_id: str
    prompt: str | list[int]
    image: Any = None  # PIL image or (H, W, 3) uint8 array; None = text only
    question: str | None = None  # the "text question" baseline's query; defaults to the prompt text
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, V): next-token logits at each row's last position
    cache: Any  # the model's past_key_values
    hidden: torch.Tensor | None = None  # (B, T, D) last hidden states of the fed block; None if not needed
    attention_mask: torch.Tensor | None = None  # (B, P) from prefill only (left padded)


class DecoderModel(Protocol):
    tokenizer: Any
    ids: Any  # pixsearch_core.modeling.tokens.SpecialTokenIds
    supports_images: bool  # can this model see images (and so answer <image> / <region> searches)?
    needs_hidden: bool  # does predict_mask need the hidden states (the decoder then keeps them per row)?

    def prefill(self, requests: list[DecodeRequest], continuations: list[list[int]]) -> ModelOutput: ...

    def extend(
        self, cache: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> ModelOutput: ...

    def select(self, cache: Any, index: torch.Tensor) -> Any: ...

    def predict_mask(
        self, request: DecodeRequest, hidden: torch.Tensor | None, continuation: list[int]
    ) -> np.ndarray | None: ...


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad token lists -> (input_ids, attention_mask, position_ids), each (B, max_len)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask, positions(mask)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Contiguous per-row positions of the real tokens: cumsum(mask) - 1 (pads get 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)

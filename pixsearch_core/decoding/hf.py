"""`HFCausalLMAdapter`: any Hugging Face causal LM as a text-only `DecoderModel`."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from pixsearch_core.decoding.adapter import DecodeRequest, ModelOutput, left_pad
from pixsearch_core.modeling.kv_cache import GrowingCache

log = logging.getLogger(__name__)


class HFCausalLMAdapter:
    """Steps an `AutoModelForCausalLM` with `past_key_values`; no images, so no `<image>` / `<region>` searches.

    The tokenizer must hold the PixSearch special tokens (`modeling.tokens.add_special_tokens`) and the model's
    embeddings must cover them (`resize_token_embeddings`).
    """

    supports_images = False
    needs_hidden = False

    def __init__(self, model, tokenizer, add_bos: bool = True):
        from pixsearch_core.modeling.tokens import special_token_ids

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.ids = special_token_ids(tokenizer)
        self.add_bos = add_bos
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the model's embeddings only "
                f"{model.get_input_embeddings().weight.shape[0]}; call resize_token_embeddings"
            )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_ids(self, request: DecodeRequest) -> list[int]:
        if not isinstance(request.prompt, str):
            return list(request.prompt)
        return self.tokenizer.encode(request.prompt, add_special_tokens=self.add_bos)

    @torch.inference_mode()
    def _forward(self, input_ids, attention_mask, position_ids, cache=None) -> ModelOutput:
        dev = self.device
        out = self.model(
            input_ids=input_ids.to(dev),
            attention_mask=attention_mask.to(dev),
            position_ids=position_ids.to(dev),
            past_key_values=GrowingCache() if cache is None else cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return ModelOutput(logits=out.logits[:, -1].float(), cache=out.past_key_values)

    def prefill(self, requests: list[DecodeRequest], continuations: list[list[int]]) -> ModelOutput:
        rows = [self.prompt_ids(r) + list(c) for r, c in zip(requests, continuations)]
        input_ids, mask, pos = left_pad(rows, self.ids.pad)
        out = self._forward(input_ids, mask, pos)
        out.attention_mask = mask.to(self.device)
        return out

    def extend(self, cache, input_ids, attention_mask, position_ids) -> ModelOutput:
        return self._forward(input_ids, attention_mask, position_ids, cache)

    def select(self, cache: Any, index: torch.Tensor) -> Any:
        cache.batch_select_indices(index.to(self.device))
        return cache

    def predict_mask(self, request, hidden, continuation) -> np.ndarray | None:
        return None  # text-only: the decoder never asks (region searches need an image)

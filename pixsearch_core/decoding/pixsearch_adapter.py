"""`PixSearchAdapter`: the segmenting LMM (`pixsearch_core.modeling.PixSearchModel`) as a `DecoderModel`.

The image is encoded once, at prefill (`model.start`: vision tower + projector spliced at the image placeholder);
after that only new tokens go through the LM (`model.step` on the live cache). `<region>` searches call
`model.predict_mask` on the text hidden states kept by the decoder (the span tagger picks the LAST entity span);
the model caches the SAM image embedding per image content, so several region searches pay for SAM once.

A batch must be all-image or all-text (the model's `embed_inputs` takes one image per row or none).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from pixsearch_core.decoding.adapter import DecodeRequest, ModelOutput, left_pad

log = logging.getLogger(__name__)


class PixSearchAdapter:
    supports_images = True
    needs_hidden = True

    def __init__(self, model):
        self.model = model.eval()
        self.tokenizer = model.tokenizer
        self.ids = model.token_ids

    def prompt_ids(self, request: DecodeRequest) -> list[int]:
        """Token ids of the prompt; an image request gets the image placeholder first unless it holds one."""
        from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER

        if not isinstance(request.prompt, str):
            return list(request.prompt)
        text = request.prompt
        if request.image is not None and IMAGE_PLACEHOLDER not in text:
            text = IMAGE_PLACEHOLDER + text
        return self.tokenizer.encode(text, add_special_tokens=True)

    @torch.inference_mode()
    def prefill(self, requests: list[DecodeRequest], continuations: list[list[int]]) -> ModelOutput:
        with_image = [r.image is not None for r in requests]
        if any(with_image) and not all(with_image):
            raise ValueError(
                f"PixSearchAdapter needs a batch of all-image or all-text requests; images missing "
                f"for {[r.sample_id for r, w in zip(requests, with_image) if not w]}"
            )
        rows = [self.prompt_ids(r) + list(c) for r, c in zip(requests, continuations)]
        input_ids, mask, _ = left_pad(rows, self.ids.pad)
        dev = self.model.device
        images = [r.image for r in requests] if all(with_image) else None
        state = self.model.start(images, input_ids.to(dev), mask.to(dev), logits_to_keep=1)
        return ModelOutput(
            state.logits[:, -1].float(), state.past_key_values, state.hidden_states, state.attention_mask
        )

    @torch.inference_mode()
    def extend(self, cache, input_ids, attention_mask, position_ids) -> ModelOutput:
        # the model derives the same positions from the mask: cumsum(mask) - 1
        dev = self.model.device
        state = self.model.step(
            attention_mask.to(dev), input_ids=input_ids.to(dev), past_key_values=cache, logits_to_keep=1
        )
        return ModelOutput(state.logits[:, -1].float(), state.past_key_values, state.hidden_states)

    def select(self, cache, index: torch.Tensor):
        cache.batch_select_indices(index.to(self.model.device))
        return cache

    def text_hidden(self, request: DecodeRequest, hidden: torch.Tensor, continuation: list[int]) -> torch.Tensor:
        """Drop the image-feature positions: (prompt text + continuation) hidden states, (T, D)."""
        prompt = self.prompt_ids(request)
        if self.ids.image_placeholder not in prompt:
            return hidden
        at = prompt.index(self.ids.image_placeholder)
        n_image = hidden.shape[0] - len(continuation) - (len(prompt) - 1)
        return torch.cat([hidden[:at], hidden[at + n_image :]])

    @torch.inference_mode()
    def predict_mask(self, request: DecodeRequest, hidden, continuation) -> np.ndarray | None:
        if request.image is None or hidden is None:
            return None
        text = self.text_hidden(request, hidden, continuation)
        pred = self.model.predict_mask(
            [request.image],
            hidden_states=text[None],
            attention_mask=torch.ones(1, text.shape[0], dtype=torch.bool, device=text.device),
            return_details=True,
        )
        if not bool(pred.has_prompt[0]):
            return None  # the span tagger found no entity
        return pred.masks[0].cpu().numpy()

"""Samples -> a training batch for PixSearchModel: chat template (`modeling.templates`), truncation, labels with
the information tokens masked (Eq. 9-10 via the offset mapping), B/I/O labels per token, images and masks resized
for the decoder.

    collate = Collator(model.tokenizer, max_length=512, image_max_side=1024)
    batch = collate(samples)   # images, input_ids, attention_mask, labels, tags, gt_masks, n_tokens, ids

Only assistant turns (and the end-of-turn token after each) are LM targets; inside them, every token that
overlaps an <information>...</information> block is not (`losses.information_token_mask`). Tags: the first token
of each span B, the rest I, every other real token O, padding and the image placeholder IGNORE. A span truncated
away entirely loses its mask (logged); the rest keep theirs, in span order. A text-only sample (LLaVA's
text rows) gets a black 32x32 image and the placeholder, so that every row of a batch has exactly one image.

A sample that still fails here (packing checks them, `sample.check`) is logged and left out of the batch
(`skipped`); the step goes on with the rest. When every sample of a micro-batch fails, the batch is one blank
text-only row with `weight` 0: every rank still runs its forward, backward and gradient reduction in step.
"""

from __future__ import annotations

import dataclasses
import io
import logging

import numpy as np
import torch

from pixsearch_core.modeling.span_tagger import TAG_B, TAG_I, TAG_O
from pixsearch_core.modeling.templates import ChatTemplate, get_template, render_conversation
from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER
from pixsearch_core.prompts.labels import IGNORE, information_spans, information_token_mask, lm_labels
from pixsearch_core.prompts.restate import with_restated_question
from pixsearch_core.prompts.sample import IMAGE, Sample

log = logging.getLogger(__name__)


def render(sample: Sample, template: ChatTemplate, eos: str):
    """-> (text, assistant char ranges, span char ranges) for one sample, in the chat template shared with
    evaluation (`modeling.templates`); the image goes where `<image>` is in the first user turn (prepended when
    absent). Every row has an image (text-only rows get a blank one)."""
    text, targets, starts = render_conversation(sample.conversation, template, eos, with_image=True)
    spans = [(starts[t] + s, starts[t] + e) for t, s, e in sample.spans]
    return text, targets, spans


def load_image(sample: Sample, max_side: int) -> tuple[np.ndarray, torch.Tensor]:
    """-> (uint8 (H, W, 3), float masks (N, H, W)) with the longer side at most `max_side`."""
    from PIL import Image

    img = Image.open(io.BytesIO(sample.image)).convert("RGB") if sample.image else Image.new("RGB", (32, 32))
    w, h = img.size
    scale = min(1.0, max_side / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, Image.BILINEAR)
    masks = sample.masks if sample.masks is not None else np.zeros((0, h, w), np.uint8)
    out = [np.asarray(Image.fromarray(m * 255).resize(size, Image.NEAREST)) > 127 for m in masks]
    gt = torch.from_numpy(np.stack(out)).float() if out else torch.zeros((0, size[1], size[0]))
    return np.asarray(img), gt


def _overlap(offsets: torch.Tensor, s: int, e: int) -> torch.Tensor:
    return (offsets[:, 0] < e) & (offsets[:, 1] > s) & (offsets[:, 1] > offsets[:, 0])


class Collator:
    def __init__(
        self,
        tokenizer,
        max_length: int = 512,
        image_max_side: int = 1024,
        template: str = "vicuna_v1",
        restate_question: bool = False,
    ):
        self.template = get_template(template)
        self.restate_question = restate_question  # prompts.restate: the question again inside each block
        self.tok, self.max_length, self.image_max_side = tokenizer, max_length, image_max_side
        self.placeholder = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)

    def _prepare(self, samples: list[Sample]) -> tuple[list, list[str]]:
        """(sample, rendered, (image, masks)) of every sample that renders and loads; ids of the others."""
        ok, skipped = [], []
        for s in samples:
            try:
                if self.restate_question:
                    s = dataclasses.replace(s, conversation=with_restated_question(s.conversation))
                rendered = render(s, self.template, self.tok.eos_token)
                if rendered[0].count(IMAGE_PLACEHOLDER) != 1:
                    raise ValueError(f"{rendered[0].count(IMAGE_PLACEHOLDER)} image placeholders; one needed")
                ok.append((s, rendered, load_image(s, self.image_max_side)))
            except Exception as e:  # one bad sample must not stop the run (resume would replay it forever)
                log.warning("sample %s skipped in the collator: %s: %s", s.id, type(e).__name__, e)
                skipped.append(s.id)
        return ok, skipped

    def __call__(self, samples: list[Sample]) -> dict:
        prepared, skipped = self._prepare(samples)
        weight = 1.0
        if not prepared:
            blank = Sample(
                id="blank",
                source="blank",
                stage=1,
                image=None,
                conversation=[{"role": "user", "content": IMAGE}, {"role": "assistant", "content": "."}],
            )
            prepared, weight = self._prepare([blank])[0], 0.0
        samples = [p[0] for p in prepared]
        rendered = [p[1] for p in prepared]
        enc = self.tok(
            [r[0] for r in rendered],
            return_tensors="pt",
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
        )
        ids, attn = enc.input_ids, enc.attention_mask
        keep = torch.zeros_like(ids, dtype=torch.bool)
        tags = torch.full_like(ids, IGNORE)
        images, gt_masks = [], []
        for b, (sample, (text, targets, spans)) in enumerate(zip(samples, rendered)):
            offs, real = enc.offset_mapping[b], attn[b].bool()
            for s, e in targets:
                keep[b] |= _overlap(offs, s, e)
            keep[b] &= information_token_mask(offs, information_spans(text))
            tags[b] = torch.where(real & (ids[b] != self.placeholder), TAG_O, IGNORE)
            image, masks = prepared[b][2]
            kept = []
            for j, (s, e) in sorted(enumerate(spans), key=lambda x: x[1]):
                idx = torch.nonzero(_overlap(offs, s, e) & real).flatten()
                if len(idx) == 0:
                    log.info("sample %s: span %d truncated away (max_length %d)", sample.id, j, self.max_length)
                    continue
                tags[b, idx[0]], tags[b, idx[1:]] = TAG_B, TAG_I
                kept.append(j)
            images.append(image)
            gt_masks.append(masks[kept] if kept else masks[:0])
        if (ids == self.placeholder).sum(1).ne(1).any():
            raise ValueError(f"samples {[s.id for s in samples]}: every row needs exactly one image placeholder")
        labels = lm_labels(ids, attn, keep, (self.placeholder,))
        return {
            "ids": [s.id for s in samples],
            "images": images,
            "input_ids": ids,
            "attention_mask": attn,
            "labels": labels,
            "tags": tags,
            "gt_masks": gt_masks,
            "n_tokens": int(attn.sum()),
            "skipped": skipped,
            "weight": weight,
        }

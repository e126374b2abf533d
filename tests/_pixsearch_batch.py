"""Shared helpers for the modeling tests: a small training batch for the tiny model."""

from __future__ import annotations

import numpy as np
import torch

from pixsearch_core.modeling.span_tagger import TAG_B, TAG_I, TAG_O
from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER
from pixsearch_core.training.losses import IGNORE, information_spans, information_token_mask, lm_labels


def images(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8), rng.integers(0, 255, (48, 32, 3), dtype=np.uint8)]


def batch(model, seed: int = 0):
    """Two rows: an entity span each ("red cat" / "dog") and an information block in row 0."""
    tok = model.tokenizer
    texts = [
        f"{IMAGE_PLACEHOLDER}Q: what? A: the red cat<search><region></search>"
        f"<information>doc text</information> is Tom",
        f"{IMAGE_PLACEHOLDER}Q: who? A: a dog",
    ]
    entities = ["red cat", "dog"]
    enc = tok(texts, return_tensors="pt", padding=True, return_offsets_mapping=True)
    tags = torch.full_like(enc.input_ids, IGNORE)
    loss_mask = torch.ones_like(enc.input_ids, dtype=torch.bool)
    for b, (text, ent) in enumerate(zip(texts, entities)):
        s = text.index(ent)
        e = s + len(ent)
        offs = enc.offset_mapping[b]
        real = enc.attention_mask[b].bool()
        inside = (offs[:, 0] >= s) & (offs[:, 1] <= e) & (offs[:, 1] > offs[:, 0])
        tags[b] = torch.where(real, torch.full_like(tags[b], TAG_O), tags[b])
        idx = torch.nonzero(inside & real).flatten()
        tags[b, idx[0]] = TAG_B
        tags[b, idx[1:]] = TAG_I
        loss_mask[b] = information_token_mask(offs, information_spans(text))
    labels = lm_labels(enc.input_ids, enc.attention_mask, loss_mask, (model.token_ids.image_placeholder,))
    ims = images(seed)
    gt = []
    for im in ims:
        m = torch.zeros(im.shape[:2])
        m[5:20, 8:30] = 1
        gt.append(m[None])
    return dict(
        images=ims, input_ids=enc.input_ids, attention_mask=enc.attention_mask, tags=tags, labels=labels, gt_masks=gt
    )

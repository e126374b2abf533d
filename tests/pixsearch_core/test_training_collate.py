"""The collator (chat template, labels, B/I/O tags, masks) and the information-token masking of the LM loss."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from pixsearch_core.prompts.collate import Collator
from pixsearch_core.prompts.sample import Sample
from pixsearch_core.registry import get
from pixsearch_core.training.losses import IGNORE, pixsearch_loss


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return get("model", "tiny")()


def _png(h, w) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


RESPONSE = (
    "The red cat<search><region></search><information>Tom: a cat owned by Ann.</information> is Tom, "
    "owned by Ann.<search>Ann birthplace</search><information>Ann was born in Oslo.</information> "
    "Answer: Oslo"
)


def _trajectory() -> Sample:
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:50] = 1
    return Sample(
        id="t1",
        source="trajectories",
        stage=2,
        image=_png(40, 60),
        conversation=[
            {"role": "user", "content": "<image>\nWhere was the owner born?"},
            {"role": "assistant", "content": RESPONSE},
        ],
        spans=[(1, 0, 11)],
        masks=mask[None],
    )


def _refer() -> Sample:
    return Sample(
        id="r1",
        source="refer",
        stage=1,
        image=_png(20, 20),
        conversation=[
            {"role": "user", "content": "<image>\nSegment the dog."},
            {"role": "assistant", "content": "Sure: the dog."},
        ],
        spans=[(1, 6, 13)],
        masks=np.ones((1, 20, 20), np.uint8),
    )


def test_labels_tags_and_masks(model):
    collate = Collator(model.tokenizer, max_length=512, image_max_side=30, template="vicuna_v1")
    b = collate([_trajectory(), _refer()])
    tok = model.tokenizer
    kept = tok.decode(b["input_ids"][0][b["labels"][0] != IGNORE])
    # independent reference; vicuna_v1's space after "ASSISTANT:" belongs to the answer (modeling/templates.py)
    expected = " " + re.sub(r"<information>.*?</information>", "", RESPONSE) + tok.eos_token
    assert kept == expected
    assert tok.decode(b["input_ids"][0][b["tags"][0] >= 1]) == "The red cat"
    assert (b["tags"][0] == 1).sum() == 1 and (b["tags"][1] == 1).sum() == 1
    assert tok.decode(b["input_ids"][1][b["tags"][1] >= 1]) == "the dog"
    assert "USER:" not in tok.decode(b["input_ids"][1][b["labels"][1] != IGNORE])  # user turns are no targets
    assert b["images"][0].shape == (20, 30, 3) and b["gt_masks"][0].shape == (1, 20, 30)
    gm = b["gt_masks"][0][0]
    assert gm[5:15, 10:25].all() and gm.sum() == 10 * 15  # nearest resize of a 20x30 box by 1/2


def test_restated_question_joins_each_information_block_and_stays_out_of_the_targets(model):
    """data.restate_question: the question again before every </information> (what the decoder forces with
    decode.restate_question), masked out of the LM loss with the evidence; targets and tags unchanged."""
    tok = model.tokenizer
    plain = Collator(tok, max_length=512, image_max_side=30, template="vicuna_v1")([_trajectory()])
    b = Collator(tok, max_length=512, image_max_side=30, template="vicuna_v1", restate_question=True)([_trajectory()])
    text = tok.decode(b["input_ids"][0][b["attention_mask"][0].bool()])
    ask = "\nQuestion: Where was the owner born?</information>"
    assert text.count(ask) == 2 and text.count("</information>") == 2
    assert b["input_ids"].shape[1] > plain["input_ids"].shape[1]
    kept = lambda x: tok.decode(x["input_ids"][0][x["labels"][0] != IGNORE])  # noqa: E731
    assert kept(b) == kept(plain) and "Question:" not in kept(b)
    assert tok.decode(b["input_ids"][0][b["tags"][0] >= 1]) == "The red cat"


def test_truncation_drops_masks_of_lost_spans(model):
    long = _refer()
    long.conversation[1]["content"] = "x" * 300 + " the dog."
    long.spans = [(1, 301, 308)]
    b = Collator(model.tokenizer, max_length=64, image_max_side=30, template="plain")([long])
    assert b["input_ids"].shape[1] == 64 and b["gt_masks"][0].shape[0] == 0 and (b["tags"][0] >= 1).sum() == 0


def test_information_tokens_contribute_no_gradient(model):
    """d loss / d logits is exactly zero at every position whose target is an information token, and non-zero at
    the positions predicting the answer; with the mask removed the same check fails (the test can see it)."""
    b = Collator(model.tokenizer, max_length=512, image_max_side=30, template="plain")([_trajectory()])
    ids = b["input_ids"][0]
    text_ids = ids.tolist()
    tok = model.tokenizer
    info = torch.zeros_like(ids, dtype=torch.bool)  # reference: token positions from the special token ids
    inside = False
    for t, i in enumerate(text_ids):
        if i == model.token_ids.info_start:
            inside = True
        info[t] = inside
        if i == model.token_ids.info_end:
            inside = False
    assert info.sum() > 20

    def logit_grads(labels):
        model.zero_grad(set_to_none=True)
        out = model(b["images"], b["input_ids"], b["attention_mask"], span_tags=b["tags"])
        out.logits.retain_grad()
        loss, _ = pixsearch_loss(out, labels, b["tags"], b["gt_masks"])
        loss.backward()
        return out.logits.grad[0].abs().sum(-1)  # (T,): position t predicts token t + 1

    g = logit_grads(b["labels"])
    predicts_info = torch.zeros_like(info)
    predicts_info[:-1] = info[1:]
    assert g[predicts_info].max() == 0
    answer = tok.encode(" Answer: Oslo", add_special_tokens=False)
    start = len(text_ids) - len(answer) - 1  # the EOS follows
    assert (g[start - 1 : start + len(answer) - 1] > 0).all()
    lora_grad = [p.grad for n, p in model.named_parameters() if "lora_B" in n][0]
    assert lora_grad is not None and lora_grad.abs().sum() > 0
    unmasked = torch.where(
        b["attention_mask"].bool() & (b["input_ids"] != model.token_ids.image_placeholder), b["input_ids"], IGNORE
    )
    assert logit_grads(unmasked)[predicts_info].min() > 0  # broken masking would be caught

"""Losses against hand-worked and independent reference computations."""

from __future__ import annotations

import math

import pytest
import torch

from pixsearch_core.modeling.build import tiny_tokenizer
from pixsearch_core.modeling.tokens import add_special_tokens
from pixsearch_core.training.losses import (
    IGNORE,
    LossWeights,
    focal_tversky_loss,
    information_spans,
    information_token_mask,
    mask_bce_loss,
    masked_lm_loss,
    pixsearch_loss,
    span_kl_loss,
    span_tag_loss,
)


def test_info_mask_hand_worked_offsets():
    #        0123456789...
    text = "ab <information>xy</information> cd"
    spans = information_spans(text)
    assert spans == [(3, 32)]
    offsets = [(0, 2), (2, 3), (3, 16), (16, 18), (18, 32), (32, 33), (33, 35), (0, 0)]
    # a token straddling the block start, and one straddling its end, overlap it too
    straddle = [(0, 4), (31, 34)]
    assert information_token_mask(offsets, spans).tolist() == [True, True, False, False, False, True, True, True]
    assert information_token_mask(straddle, spans).tolist() == [False, False]


def test_info_mask_every_overlapping_token_and_no_other():
    tok = tiny_tokenizer()
    add_special_tokens(tok)
    text = (
        "Q? The bird<search><region></search><information>Doc 1: a robin.\n</information> is a robin"
        "<search>robin range</search><information>Europe</information>. Done<information>cut off"
    )
    enc = tok(text, return_offsets_mapping=True)
    keep = information_token_mask(enc["offset_mapping"], information_spans(text))
    # independent reference: mark the characters inside blocks by scanning with str.find
    inside = [False] * len(text)
    pos = 0
    while (s := text.find("<information>", pos)) >= 0:
        e = text.find("</information>", s)
        e = len(text) if e < 0 else e + len("</information>")
        inside[s:e] = [True] * (e - s)
        pos = e
    for i, (s, e) in enumerate(enc["offset_mapping"]):
        expected_excluded = any(inside[s:e])
        assert keep[i].item() is (not expected_excluded), (i, text[s:e])
    assert (~keep).sum() > 0 and keep.sum() > 0
    decoded_kept = tok.decode([t for t, k in zip(enc["input_ids"], keep.tolist()) if k])
    assert "robin." not in decoded_kept and "Europe" not in decoded_kept and "cut off" not in decoded_kept
    assert "The bird" in decoded_kept and "is a robin" in decoded_kept and ". Done" in decoded_kept


def test_masked_lm_loss_averages_over_kept_tokens_only():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[1, 2, IGNORE, 4]])
    # kept targets: position 1 (=2, predicted by logits[0]) and 3 (=4, by logits[2])
    ref = -(torch.log_softmax(logits[0, 0], -1)[2] + torch.log_softmax(logits[0, 2], -1)[4]) / 2
    torch.testing.assert_close(masked_lm_loss(logits, labels), ref)


def test_span_tag_loss_class_weights():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    tags = torch.tensor([[0, 1]])
    nll = [-torch.log_softmax(logits[0, 0], -1)[0], -torch.log_softmax(logits[0, 1], -1)[1]]
    torch.testing.assert_close(span_tag_loss(logits, tags), (nll[0] + nll[1]) / 2)
    torch.testing.assert_close(span_tag_loss(logits, tags, (1.0, 3.0, 1.0)), (nll[0] + 3 * nll[1]) / 4)


def test_focal_tversky_hand_worked():
    big = 30.0  # sigmoid(±30) is 0/1 to float precision
    target = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    pred = torch.tensor([[[big, -big, big, -big]]])  # TP 1, FN 1, FP 1
    ti = 1 / (1 + 0.7 * 1 + 0.3 * 1)
    assert focal_tversky_loss(pred, target).item() == pytest.approx((1 - ti) ** 0.75, rel=1e-5)
    assert focal_tversky_loss(target * 2 * big - big, target).item() == pytest.approx(0.0, abs=1e-5)


def test_bce_and_kl_reference():
    logits = torch.tensor([[[0.0, 2.0]], [[-1.0, 1.0]]])
    target = torch.tensor([[[0.0, 1.0]], [[1.0, 1.0]]])
    sp = lambda x: math.log1p(math.exp(-x))  # noqa: E731  -log(sigmoid(x))
    per_mask = [(sp(-0.0) + sp(2.0)) / 2, (sp(-1.0) + sp(1.0)) / 2]
    assert mask_bce_loss(logits, target).item() == pytest.approx(sum(per_mask) / 2, rel=1e-5)
    h = torch.zeros(1, 4, 2)
    t = torch.zeros(1, 4, 2)
    h[0, 1] = torch.tensor([1.0, 1.0])  # span (1, 3): squared distance 2
    h[0, 3] = torch.tensor([2.0, 0.0])  # span (3, 4): squared distance 4
    assert span_kl_loss(h, t, [[(1, 3), (3, 4)]], sigma=2.0).item() == pytest.approx((2 / 8 + 4 / 8) / 2)


def test_default_weights_are_table_9():
    w = LossWeights()
    assert (w.ce, w.seg, w.bce, w.kl, w.cls) == (1.0, 8.0, 2.0, 0.1, 2.0)
    assert w.choice == 0.0 and w.answer == 0.0  # not in the paper: off unless a recipe asks for them


def test_choice_loss_is_cross_entropy_at_the_decisions_only():
    from pixsearch_core.training.losses import IGNORE, choice_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE, 3, 4, 5, 6], [IGNORE, 1, IGNORE, 2, 0]])
    decision = torch.tensor([[False, True, False, False, True], [False, True, False, True, False]])
    # row 0: position 1 predicts label 4; position 4 has no next token; row 1: position 1's next label is
    # IGNORE (skipped), position 3 predicts label 0
    want = torch.nn.functional.cross_entropy(torch.stack([logits[0, 1], logits[1, 3]]), torch.tensor([4, 0]))
    assert choice_loss(logits, labels, decision).item() == pytest.approx(want.item(), rel=1e-6)
    assert choice_loss(logits, labels, torch.zeros_like(decision)).item() == 0.0


def test_answer_positions_start_at_the_last_evidence_end_of_each_row():
    from pixsearch_core.training.losses import answer_positions

    end = 9
    ids = torch.tensor([[1, end, 2, end, 3, 4], [1, 2, 3, 4, 5, 6], [end, 1, 1, 1, 1, 1]])
    assert answer_positions(ids, end).tolist() == [
        [False, False, False, True, True, True],  # from the second (last) </information> on
        [False] * 6,  # no evidence: no answer positions
        [True] * 6,
    ]


def test_answer_loss_is_cross_entropy_over_what_follows_the_last_evidence():
    from pixsearch_core.training.losses import IGNORE, answer_loss, answer_positions

    torch.manual_seed(1)
    end = 6
    ids = torch.tensor([[5, end, 2, 3, end, 4, 1], [5, 5, 2, 3, 1, 4, 1]])
    labels = torch.tensor([[IGNORE, IGNORE, 2, 3, IGNORE, 4, 1], [IGNORE, 5, 2, 3, 1, 4, 1]])
    logits = torch.randn(2, 7, 8)
    # row 0: positions 4 and 5 predict labels 4 and 1 (position 6 has no next token); row 1 has no evidence
    want = torch.nn.functional.cross_entropy(logits[0, [4, 5]], torch.tensor([4, 1]))
    got = answer_loss(logits, labels, answer_positions(ids, end))
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_tversky_weights_reach_the_seg_term():
    """loss.tversky_alpha/beta (the recipe's choice; the paper gives none) are the α/β of L_seg in pixsearch_loss."""
    from types import SimpleNamespace

    big = 30.0
    gold = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    pred = torch.tensor([[[big, big, big, -big]]])  # TP 1, FN 0, FP 2: an over-grown mask
    out = SimpleNamespace(
        logits=torch.zeros(1, 2, 3),
        mask_logits=[pred],
        span_logits=None,
        spans=[[(0, 1)]],
        teacher_hidden_states=None,
        hidden_states=None,
    )
    labels = torch.full((1, 2), -100)
    for a, b in ((0.7, 0.3), (0.5, 0.5), (0.3, 0.7)):
        _, terms = pixsearch_loss(out, labels, gt_masks=[gold], weights=LossWeights(tversky_alpha=a, tversky_beta=b))
        assert terms["seg"] == pytest.approx((1 - 1 / (1 + 2 * b)) ** 0.75, rel=1e-5)
    assert (LossWeights().tversky_alpha, LossWeights().tversky_beta) == (0.7, 0.3)  # Abraham & Khan's defaults

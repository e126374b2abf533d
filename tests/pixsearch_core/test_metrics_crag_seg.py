"""CRAG-MM verdicts/aggregation (docs/metrics.md §2.2) and segmentation metrics (§8, §9) on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from pixsearch_core.metrics.crag import JudgeUnavailable, calculate_scores, is_missing, judge_turn
from pixsearch_core.metrics.segmentation import (
    ade20k_reduce_zero_label,
    coco_stuff_train_ids,
    intersection_union,
    refer_aggregate,
    refer_expression_score,
    semseg_aggregate,
)


@pytest.mark.parametrize(
    "text,miss",
    [
        ("I don’t know.", True),
        ("I DON'T KNOW!", True),
        ("i do not know the answer", True),
        ("Unknown", False),
        ("I'm not sure", False),
        ("Well, I dont know", True),
    ],
)
def test_missing_detection(text, miss):
    assert is_missing(text) is miss


def test_judge_is_called_only_for_non_exact_non_missing():
    calls = []

    def judge(q, g, r):
        calls.append(r)
        return {"right": True, "wrong": False}.get(r)

    assert judge_turn("q", "Paris", " paris ") == {
        "correct": True,
        "missing": False,
        "exact_match": True,
        "judged": False,
    }
    assert judge_turn("q", "Paris", "I don't know", judge)["correct"] is False
    assert judge_turn("q", "Paris", "right", judge)["correct"] is True
    assert judge_turn("q", "Paris", "wrong", judge)["correct"] is False
    assert judge_turn("q", "Paris", "unparsable", judge)["correct"] is False  # verdict None -> not correct
    assert calls == ["right", "wrong", "unparsable"]
    assert judge_turn("q", "Paris", "right")["correct"] is False  # no judge: exact match only

    def down(q, g, r):
        raise JudgeUnavailable("down")

    assert judge_turn("q", "Paris", "right", down)["correct"] is False  # failed judge keeps exact match
    # degenerate official case: an exact match that also says "i dont know" is correct AND missing
    t = judge_turn("q", "I dont know", "i dont know")
    assert t["correct"] and t["missing"]


def test_calculate_scores_oracle_and_n1_rule():
    rows = [
        dict(correct=True, missing=False, exact_match=False),
        dict(correct=False, missing=True, exact_match=False),
        dict(correct=False, missing=False, exact_match=False),
        dict(correct=True, missing=False, exact_match=True),
    ]
    s = calculate_scores(rows)
    assert (s["accuracy"], s["missing"], s["hallucination"], s["truthfulness"]) == (0.5, 0.25, 0.25, 0.25)
    assert s["exact_match"] == 0.25 and s["n"] == 4
    assert calculate_scores(rows[:1])["truthfulness"] == 0.0  # N == 1 -> 0.0 (official)
    assert calculate_scores(rows[2:3])["hallucination"] == 1.0
    assert calculate_scores([])["n"] == 0


def test_intersection_union_drops_ignore_and_stray_values():
    gt = np.array([[0, 1, 2], [255, 1, 1]])
    pred = np.array([[1, 1, 1], [1, 0, 1]])
    inter, union, area_p, area_g = intersection_union(pred, gt, 2)
    # gt==255 pixel is ignored in pred too; gt value 2 is outside [0, 1] (dropped from gt), pred 1 there counts
    assert area_g.tolist() == [1, 3] and area_p.tolist() == [1, 4]
    assert inter.tolist() == [0, 2] and union.tolist() == [2, 5]


def test_refer_giou_ciou_as_lisa():
    gt1 = np.zeros((4, 4), np.uint8)
    gt1[:2, :2] = 1  # 4 px
    pred1 = np.zeros((4, 4), np.uint8)
    pred1[:2, :] = 1  # 8 px, I=4, U=8
    empty = np.zeros((4, 4), np.uint8)
    s1 = refer_expression_score(pred1, gt1)
    s2 = refer_expression_score(empty, empty)  # U == 0 -> IoU 1
    assert s1["iou"] == pytest.approx(4 / (8 + 1e-5)) and s2["iou"] == 1.0
    agg = refer_aggregate([s1, s2])
    assert agg["giou"] == pytest.approx((4 / (8 + 1e-5) + 1.0) / (2 + 1e-5))
    assert agg["ciou"] == pytest.approx(4 / (8 + 1e-10))


def test_miou_modes_and_aacc():
    inter, union, label = np.array([2, 0, 0]), np.array([4, 2, 0]), np.array([3, 1, 0])
    mm = semseg_aggregate(inter, union, label)
    assert mm["miou"] == pytest.approx((0.5 + 0.0) / 2)  # class 2 absent -> excluded
    assert semseg_aggregate(inter, union, label, "all_classes")["miou"] == pytest.approx(0.5 / 3)
    assert mm["aacc"] == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="allowed: mmseg, all_classes"):
        semseg_aggregate(inter, union, label, "mean")


def test_label_conversions():
    assert ade20k_reduce_zero_label(np.array([0, 1, 150, 255], np.uint8)).tolist() == [255, 0, 149, 255]
    out = coco_stuff_train_ids(np.array([0, 10, 11, 12, 181, 255], np.uint8))
    assert out.tolist() == [0, 10, 255, 11, 170, 255]

"""Text metrics against the hand-worked cases of docs/metrics.md §0, §1, §4, §5 (oracle tables) and §7."""

from __future__ import annotations

import pytest

from pixsearch_core.metrics import infoseek as isk
from pixsearch_core.metrics.oven import oven_scores, split_group
from pixsearch_core.metrics.relaxed import relaxed_exact_match, relaxed_f1, relaxed_scores, remove_answer_prefix
from pixsearch_core.metrics.squad import exact_match, f1, f1_v2, max_over_golds, normalize_answer
from pixsearch_core.metrics.textqa import hotpot_f1, popqa_accuracy
from pixsearch_core.metrics.textvqa import process_answer, textvqa_accuracy

FILLER = " ".join(f"w{i}" for i in range(20))


def test_normalize_ascii_punctuation_then_articles():
    assert normalize_answer("The-end") == "theend"  # punctuation first: the article survives, glued
    assert normalize_answer("  The  Eiffel   Tower! ") == "eiffel tower"
    assert normalize_answer("don’t “quote” – x") == "don’t “quote” – x"  # unicode punctuation is kept
    assert normalize_answer("an apple, a pear") == "apple pear"


@pytest.mark.parametrize(
    "pred,gt,rem,rf1,sem,sf1",
    [
        ("The answer is Paris, France.", "Paris", 1.0, 0.4, 0.0, 0.4),
        ("category", "cat", 1.0, 0.0, 0.0, 0.0),
        (FILLER + " Paris", "Paris", 0.0, 2 * (1 / 21) / (1 / 21 + 1), 0.0, 2 * (1 / 21) / (1 / 21 + 1)),
        ("Paris", "", 1.0, 0.0, 0.0, 0.0),
        ("Paris", "The", 1.0, 0.0, 0.0, 0.0),
        ("", "", 1.0, 0.0, 1.0, 0.0),
        ("the the", "a", 1.0, 0.0, 1.0, 0.0),
        ("Paris", "a b c d e f g h i j k Paris", 0.0, 0.0, 0.0, 2 * 1 * (1 / 11) / (1 + 1 / 11)),
    ],
)
def test_relaxed_and_squad_oracle_table(pred, gt, rem, rf1, sem, sf1):
    assert relaxed_exact_match(pred, gt) == rem
    assert relaxed_f1(pred, gt) == pytest.approx(rf1, abs=1e-12)
    assert exact_match(pred, gt) == sem
    assert f1(pred, gt) == pytest.approx(sf1, abs=1e-12)


def test_relaxed_limits_are_options_and_prefix_is_stripped():
    assert relaxed_exact_match(FILLER + " Paris", "Paris", max_pred_words=21) == 1.0
    assert relaxed_f1("Paris", "a b c d e f g h i j k Paris", max_gold_tokens=11) == pytest.approx(2 / 12)
    assert remove_answer_prefix("Reasoning... Answer: Paris </s>") == "Paris "
    assert remove_answer_prefix("no prefix</s>") == "no prefix"
    # the prefix text itself would otherwise be part of the first 20 words
    assert relaxed_scores("Answer: Rome", ["answer"]) == {"relaxed_em": 0.0, "relaxed_f1": 0.0}
    assert relaxed_scores("Answer: Rome", ["answer"], strip_prefix=False)["relaxed_em"] == 1.0


def test_max_over_golds_separately_and_empty_golds():
    golds = ["Barack Obama", "Obama"]
    assert max_over_golds(f1, "president Obama", golds) == pytest.approx(2 / 3)
    assert max_over_golds(exact_match, "obama", golds) == 1.0
    with pytest.raises(ValueError):
        max_over_golds(f1, "x", [])


def test_hotpot_yes_no_rule_and_musique_v2_rule():
    assert hotpot_f1("yes it is", "yes") == 0.0 and f1("yes it is", "yes") == pytest.approx(0.5)
    assert hotpot_f1("no", "no way") == 0.0 and f1("no", "no way") == pytest.approx(2 / 3)
    assert hotpot_f1("yes", "yes") == 1.0
    assert f1_v2("", "") == 1.0 and f1("", "") == 0.0
    assert f1_v2("the", "Paris") == 0.0 and f1_v2("x b", "b c") == 0.5


def test_popqa_raw_substring():
    assert popqa_accuracy("He was born in Paris.", ["paris"]) == 1.0  # pa.capitalize() in pred
    assert popqa_accuracy("born in PARIS", ["Paris"]) == 0.0  # no normalisation of the prediction
    assert popqa_accuracy("it is new york", ["New York"]) == 1.0  # pa.lower()
    assert popqa_accuracy("anything", []) == 0.0


def test_infoseek_numerical_parsing_and_ranges():
    assert isk.parse_numerical("about 9-10 km") == [9.0, 10.0]
    assert isk.parse_numerical("20 to 10") == 20.0
    assert isk.parse_numerical("1,234 m") == 1234.0
    assert isk.parse_numerical("no number") == [0, 0]
    assert isk.parse_numerical("version 1.2.3") == [1.2, 3.0]  # "1.2" then ".3"
    assert isk.numerical_correct(5.0, [5.0, 6.0]) == 1.0 and isk.numerical_correct(6.01, [5.0, 6.0]) == 0.0
    assert isk.numerical_correct([5.2, 5.8], [5.0, 6.0]) == 1.0
    assert isk.numerical_correct([4.0, 6.0], [5.0, 6.0]) == 1.0  # IoU exactly 0.5
    assert isk.numerical_correct([3.0, 6.0], [5.0, 6.0]) == 0.0  # IoU 1/3
    assert isk.numerical_correct(105.0, 100.0) == 1.0  # scalar gold widened by 10 %
    ans = [{"wikidata": 1.0, "range": [0.9, 1.1]}]
    assert isk.infoseek_correct("roughly 1 metre", ans, "Numerical") == 1.0
    assert isk.infoseek_correct("The 1990", ["1990"], "Time") == 1.0
    assert isk.infoseek_correct("1991", ["1990"], "time") == 0.0  # no ±1 year tolerance
    assert round(isk.harmonic_mean(50, 25), 2) == 33.33
    assert isk.harmonic_mean(50, 0) == pytest.approx(2 / (1 / 50 + 1e12))
    assert isk.split_score([1, 0, 0]) == 33.33 and isk.split_score([]) == 0.0


def test_oven_groups_and_harmonic_means():
    assert split_group("entity_val_unseen") == "entity_unseen" and split_group("query_val_seen") == "query_seen"
    with pytest.raises(ValueError, match="neither seen nor unseen"):
        split_group("entity_val")
    s = oven_scores(
        {
            "query_val_seen": [1, 1],
            "query_val_unseen": [1, 0],
            "entity_val_seen": [1, 0, 0, 0],
            "entity_val_unseen": [1, 1, 1, 0],
        }
    )
    q, e = 2 / (1 / 100 + 1 / 50), 2 / (1 / 25 + 1 / 75)
    assert s["query_score"] == pytest.approx(q) and s["entity_score"] == pytest.approx(e)
    assert s["final"] == pytest.approx(2 / (1 / q + 1 / e))


def test_textvqa_processing_and_soft_accuracy():
    gts = ["coca cola"] * 2 + ["Coca-Cola"] + ["coke"] * 7
    assert process_answer("Coca-Cola") == "coca cola"  # '-' not next to a space -> replaced by a space
    assert textvqa_accuracy("coca cola", gts) == pytest.approx(0.9)
    assert textvqa_accuracy("The Coke", gts) == pytest.approx(1.0)
    assert textvqa_accuracy("pepsi", gts) == 0.0
    assert textvqa_accuracy("one", ["1"] * 10) == 1.0  # number words -> digits
    assert process_answer("dont") == "don't" and process_answer("Im") == "im"  # capital keys never match
    assert process_answer("3.5 ft.") == "3.5 ft"  # period kept before a digit only
    assert process_answer("x - y") == "x y" and process_answer("x-ray") == "x ray"
    assert process_answer("what's up?") == "what 's up"
    many = " ".join(["x."] * 40)  # the original removes at most 32 periods
    assert process_answer(many).count(".") == 8

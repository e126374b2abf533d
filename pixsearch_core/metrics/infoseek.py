"""InfoSeek scoring (docs/metrics.md §5). Source: `infoseek_eval.py` of the InfoSeek release.

- String and Time questions: max over `answer_eval` of SQuAD EM (no ±1-year tolerance for Time, whatever the
  official docstring says).
- Numerical questions: the gold is `answer_eval[0]["range"][:2]` (or `answer_eval["range"]`); the prediction is
  parsed by `parse_numerical` into a number or a [lo, hi] range; correct if the number lies in the gold range
  (inclusive), the range lies inside it, or the range IoU (1e-12 length smoothing) is >= 0.5 - 1e-12.
  A scalar gold (not a list) is widened by ±10 %.
- A split's score pools all question types: 100 * mean, rounded to 2 places; the final score is the harmonic mean
  of the unseen-question and unseen-entity split scores (a zero counts as 1e-12), rounded to 2 places.
"""

from __future__ import annotations

import re

from pixsearch_core.metrics.squad import exact_match, max_over_golds
from pixsearch_core.registry import register

_NUMBER = re.compile(r"[-+]?[.]?[\d]+(?:,\d\d\d)*[\.]?\d*(?:[eE][-+]?\d+)?")
QUESTION_TYPES = ("string", "time", "numerical")


def _space_ranges(text: str) -> str:
    """'9-10' -> '9 - 10': every '-' right after a digit gets spaces around it (`clean_str_range`)."""
    return "".join(" - " if ch == "-" and i >= 1 and text[i - 1].isdigit() else ch for i, ch in enumerate(text))


def parse_numerical(text: str) -> float | list[float]:
    """`process_numerical_answer`: the first two numbers as a range [a, b] if a <= b, else a; one number -> it;
    none -> [0, 0]. Thousands commas are removed; a number with two dots keeps the part before the first dot."""
    found = [n.replace(",", "").strip(".") for n in _NUMBER.findall(_space_ranges(text))]
    numbers = [float(n.split(".")[0]) if n.count(".") > 1 else float(n) for n in found][:2]
    if len(numbers) == 2:
        return [numbers[0], numbers[1]] if numbers[0] <= numbers[1] else numbers[0]
    if len(numbers) == 1:
        return numbers[0]
    return [0, 0]


def range_iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two intervals, each length smoothed by 1e-12 (`range_intersection_over_union`)."""
    lo1, hi1, lo2, hi2 = min(a), max(a), min(b), max(b)
    overlap = max(0.0, min(hi1, hi2) - max(lo1, lo2))
    denom = (hi1 - lo1 + 1e-12) + (hi2 - lo2 + 1e-12) - overlap
    return overlap / denom if denom != 0 else 0.0


def numerical_correct(pred: float | list[float], gold: float | list[float], tolerance: float = 0.1) -> float:
    """`metric_numerical_range`: 1.0 if the parsed prediction matches the gold range, else 0.0."""
    if not isinstance(gold, list | tuple):
        gold = [gold * (1 - tolerance), gold * (1 + tolerance)]
    lo, hi = gold
    if not isinstance(pred, list | tuple):
        return float(lo <= pred <= hi)
    if lo <= pred[0] <= hi and lo <= pred[1] <= hi:
        return 1.0
    return float(range_iou(list(pred), list(gold)) >= 0.5 - 1e-12)


def numerical_gold_range(answer_eval) -> list[float]:
    """The gold range of a Numerical question: `answer_eval[0]["range"][:2]` (list form) or `["range"][:2]`."""
    entry = answer_eval[0] if isinstance(answer_eval, list) else answer_eval
    return [float(str(v)) for v in entry["range"]][:2]


@register("metric", "infoseek_accuracy")
def infoseek_correct(prediction: str, answer_eval, question_type: str) -> float:
    """Per-question InfoSeek correctness (0/1) for question_type String, Time or Numerical (any case)."""
    qtype = question_type.lower()
    if qtype == "numerical":
        return numerical_correct(parse_numerical(prediction), numerical_gold_range(answer_eval))
    return max_over_golds(exact_match, prediction, answer_eval)


def harmonic_mean(*values: float) -> float:
    """The official `harmonic_mean`: zeros are replaced by 1e-12 first."""
    safe = [v if v != 0 else 1e-12 for v in values]
    return len(safe) / sum(1.0 / v for v in safe)


def split_score(correct: list[float]) -> float:
    """A split's official score: round(100 * mean, 2); an empty split scores 0 (`safe_division`)."""
    return round(100 * (sum(correct) / len(correct) if correct else 0.0), 2)


def is_unseen_question(data_split: str) -> bool:
    """The official split rule: `data_split.endswith("unseen_question")`; everything else is unseen-entity."""
    return data_split.endswith("unseen_question")

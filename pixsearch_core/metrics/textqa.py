"""Official per-dataset metrics of the text-QA benchmarks (docs/metrics.md §4).

- HotpotQA `hotpot_evaluate_v1.py`: SQuAD EM; F1 is SQuAD F1 except that if either normalised string is one of
  "yes" / "no" / "noanswer" and the two differ, F1 = 0. One gold answer.
- NQ-open: SQuAD EM (and SQuAD F1) max over the answer list (`squad` module).
- PopQA `run_model.py`: accuracy = any gold alias occurs in the raw prediction as-is, lower-cased or
  capitalised (`str.capitalize`); a raw substring test with no normalisation.
- MuSiQue `evaluate_v1.0.py` / `metrics/answer.py`: golds = [answer] + answer_aliases, SQuAD EM and the SQuAD 2.0
  F1 (`squad.f1_v2`), max over golds.
"""

from __future__ import annotations

from pixsearch_core.metrics.squad import exact_match, normalize_answer, token_f1
from pixsearch_core.registry import register

_SPECIAL = ("yes", "no", "noanswer")


@register("metric", "hotpot_f1")
def hotpot_f1(prediction: str, gold: str) -> float:
    """HotpotQA answer F1 (`f1_score` of hotpot_evaluate_v1.py)."""
    norm_pred, norm_gold = normalize_answer(prediction), normalize_answer(gold)
    if norm_pred in _SPECIAL and norm_pred != norm_gold:
        return 0.0
    if norm_gold in _SPECIAL and norm_pred != norm_gold:
        return 0.0
    return token_f1(norm_pred.split(), norm_gold.split())[0]


hotpot_em = exact_match  # HotpotQA EM is SQuAD EM


@register("metric", "popqa_accuracy")
def popqa_accuracy(prediction: str, possible_answers: list[str]) -> float:
    """1.0 if any `pa`, `pa.lower()` or `pa.capitalize()` is a substring of the raw prediction."""
    return float(
        any(pa in prediction or pa.lower() in prediction or pa.capitalize() in prediction for pa in possible_answers)
    )

"""CRAG-MM per-turn verdicts and score aggregation (docs/metrics.md §2.2).

Source: github.com/facebookresearch/CRAG-MM @36b6b4b `evaluation/evaluator.py` (`evaluate_response`),
`evaluation/dataset_utils.py` (`clean_text`), `evaluation/evaluation_utils.py` (`calculate_scores`).

Per turn:
- missing ("I don't know"): "i dont know" or "i do not know" is a substring of `clean_text(response)`;
- exact match: `response.strip().lower() == gold.strip().lower()` (no punctuation normalisation);
- correct: the exact match, unless the response is neither missing nor an exact match and a judge is configured,
  in which case the judge's verdict (True / False / None; None counts as not correct). A judge call that fails
  after its retries leaves the exact-match verdict (False). Without a judge, accuracy is exact match only.
Aggregate over N turns: hallucination = N - correct - missing (so an exact match that also says "i dont know"
counts in both correct and missing, as in the original); truthfulness = (2 correct + missing) / N - 1 when N > 1,
else 0.0 (the official N == 1 rule). Scores are fractions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pixsearch_core.registry import register

_NOT_ALNUM = re.compile(r"[^a-z0-9\s]")

#: a judge: (question, gold, response) -> True / False / None, or raises JudgeUnavailable when every retry failed
Judge = Callable[[str, str, str], "bool | None"]


class JudgeUnavailable(RuntimeError):
    """The judge could not be reached after its retries; the turn keeps its exact-match verdict."""


def clean_text(text: str) -> str:
    """`clean_text`: lower-case and drop every character other than [a-z0-9] and whitespace (’ and ' too)."""
    return _NOT_ALNUM.sub("", text.lower())


@register("metric", "crag_missing")
def is_missing(response: str) -> bool:
    """ "I don't know"-style abstention, anywhere in the response ("I DON'T KNOW!", "i do not know the answer")."""
    cleaned = clean_text(response)
    return "i dont know" in cleaned or "i do not know" in cleaned


@register("metric", "crag_exact_match")
def is_exact_match(response: str, gold: str) -> bool:
    return response.strip().lower() == gold.strip().lower()


def judge_turn(question: str, gold: str, response: str, judge: Judge | None = None) -> dict[str, bool]:
    """The official per-turn verdict: {"correct", "missing", "exact_match", "judged"}."""
    missing = is_missing(response)
    exact = is_exact_match(response, gold)
    correct, judged = exact, False
    if not missing and not exact and judge is not None:
        try:
            verdict = judge(question, gold, response)
        except JudgeUnavailable:
            verdict = exact
        else:
            judged = True
        correct = verdict is True
    return {"correct": correct, "missing": missing, "exact_match": exact, "judged": judged}


@register("metric", "crag_truthfulness")
def calculate_scores(turns: Iterable[dict]) -> dict[str, float]:
    """`calculate_scores` over per-turn verdicts (dicts with "correct", "missing", "exact_match").

    Returns accuracy, missing, hallucination, truthfulness, exact_match (fractions) and n. No turns at all gives
    zeros (the official script divides by zero there)."""
    turns = list(turns)
    n = len(turns)
    if n == 0:
        return {"accuracy": 0.0, "missing": 0.0, "hallucination": 0.0, "truthfulness": 0.0, "exact_match": 0.0, "n": 0}
    correct = sum(bool(t["correct"]) for t in turns)
    miss = sum(bool(t["missing"]) for t in turns)
    exact = sum(bool(t["exact_match"]) for t in turns)
    hallucination = n - (correct + miss)
    truthfulness = (2 * correct + miss) / n - 1 if n > 1 else 0.0
    return {
        "accuracy": correct / n,
        "missing": miss / n,
        "hallucination": hallucination / n,
        "truthfulness": truthfulness,
        "exact_match": exact / n,
        "n": n,
    }

"""SQuAD answer normalisation, exact match and token F1 (docs/metrics.md §0).

Source: the official SQuAD v1.1 `evaluate-v1.1.py` (`normalize_answer`, `exact_match_score`, `f1_score`,
`metric_max_over_ground_truths`); the same normaliser is used by HotpotQA, MuSiQue, InfoSeek and Finer.
The v2.0 F1 rule (either token list empty -> F1 = both empty) is SQuAD 2.0 `compute_f1`, used by MuSiQue.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable

from pixsearch_core.registry import register

#: ASCII punctuation only: unicode punctuation such as ’ “ – is kept, exactly as the official script does.
_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """lower -> drop ASCII punctuation -> replace articles a/an/the by spaces -> collapse whitespace.

    Order matters: punctuation goes first, so "the-end" becomes "theend" and its article survives.
    """
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(s: str) -> list[str]:
    """The normalised whitespace tokens of `s`."""
    return normalize_answer(s).split()


def token_f1(pred_toks: list[str], gold_toks: list[str]) -> tuple[float, float, float]:
    """(F1, precision, recall) of two token lists, SQuAD v1.1 style: no overlap -> (0, 0, 0)."""
    common = Counter(pred_toks) & Counter(gold_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0, 0.0, 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall), precision, recall


@register("metric", "squad_em")
def exact_match(prediction: str, gold: str) -> float:
    """SQuAD EM: 1.0 if the normalised strings are equal (so "" vs "" is 1.0), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


@register("metric", "squad_f1")
def f1(prediction: str, gold: str) -> float:
    """SQuAD v1.1 token F1. Both empty -> num_same = 0 -> 0.0 (while EM is 1.0)."""
    return token_f1(tokens(prediction), tokens(gold))[0]


@register("metric", "squad2_f1")
def f1_v2(prediction: str, gold: str) -> float:
    """SQuAD 2.0 token F1 (MuSiQue `metrics/answer.py`): if either token list is empty, F1 = int(both empty)."""
    p, g = tokens(prediction), tokens(gold)
    if not p or not g:
        return float(p == g)
    return token_f1(p, g)[0]


def max_over_golds(metric: Callable[[str, str], float], prediction: str, golds: Iterable[str]) -> float:
    """`metric_max_over_ground_truths`: the best score of `prediction` against any gold answer.

    No gold answers is a data error (the official `max()` raises too)."""
    golds = list(golds)
    if not golds:
        raise ValueError("no gold answers to score against")
    return max(metric(prediction, g) for g in golds)

"""Relaxed EM and F1 of kim-ji-2024-finer, the paper's text-QA metric (docs/metrics.md §1).

Source: github.com/wjdghks950/Finer `llava/eval/eval_fgvc.py` (`exact_match_score(max_tok_cnt=20)`, `f1_score`,
`remove_ans_prefix`). Reproduced exactly, quirks included:

- relaxed EM is a *character* substring test of the normalised gold inside the first 20 normalised prediction
  words ("category" contains "cat"; a gold normalising to "" is in every string), then exact match;
- F1 truncates the *gold* to its first 10 normalised tokens (the prediction is not truncated);
- the prediction is first cut after the first "Answer:" (if any), stripped, and "</s>" removed.
The word limits are named options in case the paper changed them (docs/metrics.md §10 item 2: not stated there).
"""

from __future__ import annotations

from pixsearch_core.metrics.squad import normalize_answer, token_f1
from pixsearch_core.registry import register

MAX_PRED_WORDS = 20
MAX_GOLD_TOKENS = 10


def remove_answer_prefix(text: str, prefix: str = "Answer:") -> str:
    """Finer's `remove_ans_prefix`: the text after the first `prefix` (whole text if absent), stripped, then
    every "</s>" removed (the strip happens before the removal, as in the original)."""
    start = text.find(prefix)
    start = 0 if start == -1 else start + len(prefix)
    return text[start:].strip().replace("</s>", "")


@register("metric", "relaxed_em")
def relaxed_exact_match(prediction: str, gold: str, max_pred_words: int = MAX_PRED_WORDS) -> float:
    """1.0 if norm(gold) is a substring of the first `max_pred_words` words of norm(prediction), else SQuAD EM."""
    norm_pred = normalize_answer(prediction)
    norm_gold = normalize_answer(gold)
    if norm_gold in " ".join(norm_pred.split()[:max_pred_words]):
        return 1.0
    return float(norm_pred == norm_gold)


def relaxed_f1_prf(prediction: str, gold: str, max_gold_tokens: int = MAX_GOLD_TOKENS) -> tuple[float, float, float]:
    """(F1, precision, recall) with the gold truncated to its first `max_gold_tokens` normalised tokens."""
    pred_toks = normalize_answer(prediction).split()
    gold_toks = " ".join(normalize_answer(gold).split()[:max_gold_tokens]).split()
    return token_f1(pred_toks, gold_toks)


@register("metric", "relaxed_f1")
def relaxed_f1(prediction: str, gold: str, max_gold_tokens: int = MAX_GOLD_TOKENS) -> float:
    """The F1 part of `relaxed_f1_prf`."""
    return relaxed_f1_prf(prediction, gold, max_gold_tokens)[0]


def relaxed_scores(prediction: str, golds: list[str], strip_prefix: bool = True) -> dict[str, float]:
    """Per-example relaxed EM and F1: max over gold answers, separately; the prediction is cleaned with
    `remove_answer_prefix` first unless `strip_prefix` is False."""
    if not golds:
        raise ValueError("no gold answers to score against")
    pred = remove_answer_prefix(prediction) if strip_prefix else prediction
    return {
        "relaxed_em": max(relaxed_exact_match(pred, g) for g in golds),
        "relaxed_f1": max(relaxed_f1(pred, g) for g in golds),
    }

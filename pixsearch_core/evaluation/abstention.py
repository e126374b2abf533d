"""Abstention per run (decode mode): the report's "Abstention" section.

For every run with CRAG-MM verdicts (per-record `scores` with `correct` and `missing`, as `metrics.crag.judge_turn`
gives them), over its scored records (error records left out, as in Table 1):
- accuracy, missing, hallucination and truthfulness through `metrics.crag.calculate_scores`, the official
  aggregation (missing = the answer says "I don't know"; hallucination = neither correct nor missing);
- on the questions the records mark unanswerable from the corpus (SynthCRAG's question type `unanswerable`): how
  many there are, the share abstained (missing) and the share hallucinated (neither correct nor missing);
- on the other questions, the share wrongly abstained (missing).
A share over no question is shown as "-".
"""

from __future__ import annotations

from typing import Any

from pixsearch_core.metrics.crag import calculate_scores
from pixsearch_core.synthcrag.unanswerable import UNANSWERABLE

HEADER = [
    "Run",
    "n",
    "Acc.",
    "Miss.",
    "Hallu.",
    "Truth.",
    "Unanswerable n",
    "Unanswerable: abstained",
    "Unanswerable: hallucinated",
    "Answerable: abstained",
]


def _verdicts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(scores + question type) of the scored records that carry CRAG verdicts."""
    return [
        {**r["scores"], "question_type": r.get("question_type")}
        for r in records
        if r.get("status") == "ok"
        and isinstance(r.get("scores"), dict)
        and "missing" in r["scores"]
        and "correct" in r["scores"]
    ]


def _share(turns: list[dict[str, Any]], pick) -> float | None:
    return sum(bool(pick(t)) for t in turns) / len(turns) if turns else None


def abstention_stats(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The section's numbers for one run's records (fractions), or None when no record has CRAG verdicts."""
    turns = _verdicts(records)
    if not turns:
        return None
    unanswerable = [t for t in turns if t["question_type"] == UNANSWERABLE]
    answerable = [t for t in turns if t["question_type"] != UNANSWERABLE]
    return {
        **calculate_scores(
            {"correct": t["correct"], "missing": t["missing"], "exact_match": t.get("exact_match", False)}
            for t in turns
        ),
        "unanswerable_n": len(unanswerable),
        "unanswerable_abstained": _share(unanswerable, lambda t: t["missing"]),
        "unanswerable_hallucinated": _share(unanswerable, lambda t: not t["correct"] and not t["missing"]),
        "answerable_abstained": _share(answerable, lambda t: t["missing"]),
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def abstention_table(runs: list) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows in %) over the runs (objects with `label` and `records`) that have CRAG verdicts; None if
    none has."""
    rows = []
    for run in runs:
        st = abstention_stats(run.records)
        if st is None:
            continue
        rows.append(
            [
                run.label,
                str(st["n"]),
                *(_pct(st[k]) for k in ("accuracy", "missing", "hallucination", "truthfulness")),
                str(st["unanswerable_n"]),
                _pct(st["unanswerable_abstained"]),
                _pct(st["unanswerable_hallucinated"]),
                _pct(st["answerable_abstained"]),
            ]
        )
    return (HEADER, rows) if rows else None

"""Per-question breakdowns of runs with CRAG-MM verdicts: the report's "Accuracy by question type" and "Target's
document retrieved" tables (`evaluation.report` puts them in; `pipelines.demo.seeds` reuses `by_question_type`).

Both count the scored records (status ok, a verdict with `correct`) per group: "ego" or "non_ego" (the verdict's
`ego`) and "all". The `*_table` functions take runs (objects with `label` and `records`) that have CRAG verdicts,
one column per run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CRAG_GROUPS = (("all", "Overall"), ("ego", "Egocentric"), ("non_ego", "Non-Egocentric"))


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}"


def _crag_verdicts(records: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any], tuple[str, str]]]:
    """(record, verdict, its groups) for each scored record with a CRAG verdict; groups "ego" or "non_ego" (the
    verdict's `ego`), and "all"."""
    for rec in records:
        s = rec.get("scores")
        if rec.get("status") == "ok" and isinstance(s, dict) and "correct" in s:
            yield rec, s, ("ego" if s.get("ego") else "non_ego", "all")


def by_question_type(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
    """{(group, question type): [correct, n]} over the scored records with CRAG verdicts and a `question_type`;
    groups "ego" / "non_ego" (the verdict's `ego`) and "all"."""
    out: dict[tuple[str, str], list[int]] = {}
    for rec, s, groups in _crag_verdicts(records):
        qt = rec.get("question_type")
        if not qt:
            continue
        for g in groups:
            c = out.setdefault((g, str(qt)), [0, 0])
            c[0] += bool(s["correct"])
            c[1] += 1
    return out


def question_type_table(runs: list) -> tuple[list[str], list[list[str]]] | None:
    """Accuracy per CRAG group and question type (the records' `question_type`), one column per run: "% (correct
    of n)". Which questions a mode wins matters as much as by how much: on SynthCRAG a mode can gain on the
    questions no search can answer by guessing the picture's colour or count differently. None unless some run's
    records carry question types."""
    counts = [by_question_type(r.records) for r in runs]
    keys = {k for c in counts for k in c}
    if not keys:
        return None
    names = dict(CRAG_GROUPS)

    def cell(c: dict[tuple[str, str], list[int]], key: tuple[str, str]) -> str:
        return f"{_pct(c[key][0], c[key][1])} ({c[key][0]} of {c[key][1]})" if key in c else "-"

    rows = [
        [names[g], qt, *(cell(c, (g, qt)) for c in counts)]
        for g in ("ego", "non_ego", "all")
        for qt in sorted(t for gg, t in keys if gg == g)
    ]
    return ["Group", "Question type", *(r.label for r in runs)], rows


def target_retrieval(records: list[dict[str, Any]]) -> dict[str, list[int]]:
    """{group: [found, n, right when found]} over the scored CRAG records that name the target's document
    (`gold_doc_id`) and whose gold trajectory searches (`gold_query_types`): `found` counts those where some
    search of the model returned that document, `right when found` those of them answered correctly. Groups
    "ego" / "non_ego" (the verdict's `ego`) and "all"."""
    out: dict[str, list[int]] = {}
    for rec, s, groups in _crag_verdicts(records):
        doc = rec.get("gold_doc_id")
        if not doc or not rec.get("gold_query_types"):
            continue  # no target document named, or a question answered from the picture: no document to find
        found = any(doc in (call.get("evidence_ids") or []) for call in rec.get("searches") or [])
        for g in groups:
            c = out.setdefault(g, [0, 0, 0])
            c[0] += found
            c[1] += 1
            c[2] += found and bool(s["correct"])
    return out


def target_retrieval_table(runs: list) -> tuple[list[str], list[list[str]]] | None:
    """Per CRAG group, one column per run: how often the model's searches returned the target's document, and how
    often it answered right when they did: "found of n (%); right r". A mode can only answer a knowledge question
    from a document it found, so this bounds what its search can add over no search. None unless some run's records
    name target documents (SynthCRAG)."""
    counts = [target_retrieval(r.records) for r in runs]
    if not any(counts):
        return None
    names = dict(CRAG_GROUPS)

    def cell(c: dict[str, list[int]], g: str) -> str:
        if g not in c:
            return "-"
        found, n, right = c[g]
        return f"{found} of {n} ({_pct(found, n)}); right {right}"

    rows = [[names[g], *(cell(c, g) for c in counts)] for g in ("ego", "non_ego", "all")]
    return ["Group", *(r.label for r in runs)], rows


#: the paper's Table-1 ordering, best first: full > whole image > no search
ORDER = ("full", "whole_image", "no_search")


def ordering_pairs(records_by_mode: dict[str, list[dict[str, Any]]]) -> list[dict[str, list[int]]]:
    """The paired counts of the ordering's two margins, [full vs whole image, whole image vs no search]: each
    {group: [won, lost]} as `paired_counts` gives it. records_by_mode must hold every mode of ORDER."""
    return [paired_counts(records_by_mode[a], records_by_mode[b]) for a, b in zip(ORDER, ORDER[1:])]


def paired_counts(records_a: list[dict[str, Any]], records_b: list[dict[str, Any]]) -> dict[str, list[int]]:
    """{group: [a only, b only]}: the questions (by `sample_id`, scored with a CRAG verdict in both runs) that run a
    answered correctly and run b did not, and the reverse. Questions both got right or both got wrong say nothing
    about which run is better; these two counts are the whole of a paired comparison (McNemar's)."""
    right_b = {rec["sample_id"]: bool(s["correct"]) for rec, s, _ in _crag_verdicts(records_b) if rec.get("sample_id")}
    out: dict[str, list[int]] = {g: [0, 0] for g, _ in CRAG_GROUPS}
    for rec, s, groups in _crag_verdicts(records_a):
        sid = rec.get("sample_id")
        if not sid or sid not in right_b or bool(s["correct"]) == right_b[sid]:
            continue
        for g in groups:
            out[g][0 if s["correct"] else 1] += 1
    return out


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar test of "a and b are equally accurate" from the discordant counts: a binomial test
    of a_only successes in a_only + b_only fair coin flips (scipy). 1.0 when no question tells the runs apart."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return float(binomtest(a_only, n, 0.5).pvalue) if n else 1.0

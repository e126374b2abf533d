"""`pixsearch eval report`: tables shaped like the paper's Tables 1, 6 and 7 (Markdown + HTML) and the figures.

    paths = write_report(["out/runs/crag-full", "out/runs/crag-no_region"], "out/report")

Each run contributes one row (label: its model and mode from run.json). Metrics come from the records'
per-example scores through the benchmark's own `aggregate`; records with status="error" are left out of the
metrics and counted in an `errors` column. CRAG-style aggregates ({"all", "ego", "non_ego"} with truthfulness,
accuracy, missing, hallucination) give the paper's layout in % (truthfulness in [-100, 100]); any other benchmark
gets one column per scalar metric. Table 6 appears when a run used a modality restriction, Table 7 when one used a
search budget. Runs with CRAG verdicts also get the abstention section (`evaluation.abstention`): missing and
hallucination per mode, on unanswerable and answerable questions. Segmentation runs (RefCOCO*, ADE20K,
COCO-Stuff) give Tables 2-3 and mask overlays instead (`seg_report.py`).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

from pixsearch_core import lineage
from pixsearch_core.decoding.options import ABLATIONS
from pixsearch_core.evaluation.abstention import abstention_table
from pixsearch_core.evaluation.breakdown import (
    CRAG_GROUPS,
    ORDER,
    mcnemar_p,
    ordering_pairs,
    question_type_table,
    target_retrieval_table,
)
from pixsearch_core.records import read_records, read_run_meta
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

CRAG_METRICS = (("truthfulness", "Truth."), ("accuracy", "Acc."), ("missing", "Miss."), ("hallucination", "Hallu."))


@dataclass
class Run:
    uri: str
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    aggregate: dict[str, Any]

    @property
    def label(self) -> str:
        model = str(self.meta.get("model", "?")).rstrip("/").rsplit("/", 1)[-1]
        return f"{model} [{self.meta.get('mode', '?')}]"

    @property
    def errors(self) -> int:
        return sum(r.get("status") == "error" for r in self.records)


def load_run(store: ObjectStore, uri: str) -> Run:
    from pixsearch_core.registry import get

    if not store.exists(join(uri, "run.json")):
        raise FileNotFoundError(f"{uri} is not a run directory (no run.json); expected <output>/runs/<run_id>")
    meta = read_run_meta(store, uri)
    records = read_records(store, uri)
    scores = [r["scores"] for r in records if r.get("status") == "ok" and r.get("scores") is not None]
    bench = get("benchmark", meta["benchmark"])(**meta.get("benchmark_options", {}))
    aggregate = bench.aggregate(scores) if scores else {}
    return Run(uri, meta, records, aggregate)


def _is_crag(agg: dict[str, Any]) -> bool:
    return all(isinstance(agg.get(g), dict) and "truthfulness" in agg[g] for g, _ in CRAG_GROUPS)


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def crag_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    header = ["Run"] + [f"{name} {m}" for _, name in CRAG_GROUPS for _, m in CRAG_METRICS] + ["n", "errors"]
    rows = [
        [r.label]
        + [_pct(r.aggregate.get(g, {}).get(k)) for g, _ in CRAG_GROUPS for k, _ in CRAG_METRICS]
        + [str(r.aggregate.get("all", {}).get("n", 0)), str(r.errors)]
        for r in runs
    ]
    return header, rows


def flat_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    keys = sorted(
        {
            k
            for r in runs
            for k, v in r.aggregate.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"
        }
    )
    header = ["Run", *keys, "records", "errors"]
    return header, [
        [r.label] + [_pct(r.aggregate.get(k)) for k in keys] + [str(len(r.records)), str(r.errors)] for r in runs
    ]


def _table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    return crag_table(runs) if runs and all(_is_crag(r.aggregate) for r in runs) else flat_table(runs)


def _budget(mode: str) -> float:
    return 0 if mode == "no_search" else float("inf") if mode == "full" else int(mode.removeprefix("budget"))


def behaviour_table(runs: list[Run], store: ObjectStore) -> tuple[list[str], list[list[str]]]:
    """Per run and group: well-formed search blocks, answers, searches per question by modality, mask gIoU
    (`evaluation.behaviour`)."""
    from pixsearch_core.evaluation.behaviour import behaviour

    header = [
        "Run",
        "Group",
        "n",
        "Well-formed",
        "Answered",
        "Searches/q",
        "region / image / text",
        "gIoU (masks made)",
        "gIoU (gold REGION, none = 0)",
        "gold REGION: <region> asked / sent",
        "gIoU (gold REGION, masks made)",
    ]
    rows = []
    for r in runs:
        for group, st in behaviour(r.records, store).items():
            if not st["n"]:
                continue
            rows.append(
                [
                    r.label,
                    group,
                    str(st["n"]),
                    _pct(st["well_formed"]),
                    _pct(st["answered"]),
                    f"{st['searches']:.2f}",
                    f"{st['region_searches']} / {st['image_searches']} / {st['text_searches']}",
                    f"{_pct(st['giou'])} (n={st['n_masks']})",
                    f"{_pct(st['giou_region_gold'])} (n={st['n_region_gold']})"
                    + (f", {st['gold_mask_unreadable']} gold masks unreadable" if st["gold_mask_unreadable"] else ""),
                    f"{_pct(st['region_chosen'])} / {_pct(st['region_sent'])}",
                    f"{_pct(st['giou_region_chosen'])} (n={st['n_region_sent']})",
                ]
            )
    return header, rows


ALPHA = 0.05  # the ordering's significance level: both margins' exact McNemar p below it


def ordering_table(runs: list[Run]) -> tuple[list[str], list[list[str]]] | None:
    """The paper's central comparison, per CRAG group: accuracy of full, whole image and no search, the margins
    (points and questions) with their paired test (the questions one mode got right and the other wrong, both
    ways, and the exact McNemar p of "equally accurate"), whether full > whole image > no search holds, and whether
    it holds with both margins significant (p < ALPHA). None unless one CRAG run of each of the three modes is
    given."""
    by_mode = {r.meta.get("mode"): r for r in runs if _is_crag(r.aggregate)}
    if not all(m in by_mode for m in ORDER):
        return None
    header = [
        "Group",
        "n",
        "full",
        "whole image",
        "no search",
        "full - whole image",
        "whole image - no search",
        "full > whole image > no search",
        f"both margins significant (p < {ALPHA})",
    ]
    pairs = ordering_pairs({m: by_mode[m].records for m in ORDER})
    rows = []
    for g, name in CRAG_GROUPS:
        aggs = [by_mode[m].aggregate[g] for m in ORDER]
        ns = {int(a.get("n", 0)) for a in aggs}
        n = ns.pop() if len(ns) == 1 else None
        acc = [float(a["accuracy"]) for a in aggs]
        tests = [(won, lost, mcnemar_p(won, lost)) for won, lost in (pair[g] for pair in pairs)]

        def margin(x: float, y: float, test: tuple[int, int, float], n: int | None = n) -> str:
            right = f"{round((x - y) * n):+d} questions; " if n else ""
            return f"{100 * (x - y):+.1f} ({right}won {test[0]}, lost {test[1]}, p={test[2]:.2g})"

        holds = acc[0] > acc[1] > acc[2]
        rows.append(
            [
                name,
                str(n) if n is not None else "differs",
                *(_pct(v) for v in acc),
                margin(acc[0], acc[1], tests[0]),
                margin(acc[1], acc[2], tests[1]),
                "yes" if holds else "no",
                "yes" if holds and all(p < ALPHA for _, _, p in tests) else "no",
            ]
        )
    return header, rows


def tables(runs: list[Run], store: ObjectStore | None = None) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for Table 1, the search behaviour table and, when such runs are given, the
    full / whole image / no search ordering and Tables 6 and 7; then, for segmentation runs, Tables 2 and 3
    (`evaluation.seg_report`)."""
    from pixsearch_core.evaluation.seg_report import is_segmentation, segmentation_tables

    text = [r for r in runs if not is_segmentation(r)]
    seg = segmentation_tables([r for r in runs if is_segmentation(r)])
    return (_text_tables(text, store) if text else []) + seg


def _text_tables(runs: list[Run], store: ObjectStore | None) -> list[tuple[str, list[str], list[list[str]]]]:
    out = [
        ("Table 1: main results", *_table(runs)),
        ("Search behaviour and mask quality", *behaviour_table(runs, store or ObjectStore())),
    ]
    order = ordering_table(runs)
    if order is not None:
        out.insert(1, ("Full vs whole image vs no search (accuracy, %)", *order))
    crag = [r for r in runs if _is_crag(r.aggregate)]
    by_type = question_type_table(crag)
    if by_type is not None:
        out.insert(2 if order is not None else 1, ("Accuracy by question type (%)", *by_type))
    found = target_retrieval_table(crag)
    if found is not None:
        at = next(i for i, t in enumerate(out) if t[0] == "Search behaviour and mask quality")
        out.insert(at, ("Target's document retrieved (questions whose gold trajectory searches)", *found))
    abstention = abstention_table(runs)
    if abstention is not None:
        out.append(("Abstention: missing and hallucination per mode (%)", *abstention))
    modes = {r.meta.get("mode") for r in runs}
    table6 = [a for a in ABLATIONS if a != "all"]  # the Table 6 mode names
    if modes & set(table6):
        abl = [r for r in runs if r.meta.get("mode") in ("full", *table6)]
        out.append(("Table 6: query-type removal (inference-time constraint)", *_table(abl)))
    if any(str(m).startswith("budget") for m in modes):
        bud = sorted(
            (
                r
                for r in runs
                if r.meta.get("mode") == "full"
                or r.meta.get("mode") == "no_search"
                or str(r.meta.get("mode")).startswith("budget")
            ),
            key=lambda r: _budget(r.meta["mode"]),
        )
        out.append(("Table 7: search budget", *_table(bud)))
    return out


def _lineage_line(store: ObjectStore, uri: str) -> str:
    lin = lineage.read(store, uri)
    if lin is None:
        return "no lineage recorded (a run from before lineage was kept)"
    code = lin.get("code") or {}
    return (
        f"code {code.get('git_commit') or code.get('package')}{' (dirty)' if code.get('dirty') else ''}, "
        f"model {lin.get('model')}"
        + (f" sha256 {lin['checkpoint_digest'][:12]}" if lin.get("checkpoint_digest") else "")
        + f", index {lin.get('index_version')}, data sha256 "
        f"{(lin.get('data_digest') or '?')[:12]}, judge {lin.get('judge', {}).get('kind')}"
    )


def markdown(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def html_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<h3>{html.escape(title)}</h3>\n<table>\n<tr>{head}</tr>\n{body}\n</table>\n"


class MixedRunsError(ValueError):
    """Runs that would share a table were scored on different benchmark data or by a different judge."""


def check_comparable(store: ObjectStore, run_uris: list[str]) -> None:
    """Raise MixedRunsError when two runs of one benchmark differ in benchmark data digest or judge."""
    first: dict[tuple[str, str], tuple[str, Any]] = {}  # (benchmark, key) -> (run, value) of the first run
    for uri in run_uris:
        lin = lineage.read(store, uri)
        if lin is None:
            continue  # a run from before lineage was kept: nothing to compare
        bench = read_run_meta(store, uri).get("benchmark")
        for key, what in (("data_digest", "benchmark data"), ("judge", "judge")):
            ref_uri, ref = first.setdefault((bench, key), (uri, lin.get(key)))
            if lin.get(key) != ref:
                raise MixedRunsError(
                    f"runs {ref_uri} and {uri} of benchmark {bench!r} differ in {what} ({key}: {ref!r} vs "
                    f"{lin.get(key)!r}); their numbers are not comparable. Pass --allow-mixed to report them anyway"
                )


def write_report(
    run_uris: list[str],
    out: str,
    store: ObjectStore | None = None,
    overlays_per_run: int = 4,
    allow_mixed: bool = False,
) -> dict[str, list[str]]:
    """Write report.md, report.html, lineage.json and the PNG figures under `out`; returns {"tables": [...],
    "figures": [...]}. Runs of one benchmark on different data or judges are refused unless `allow_mixed`."""
    from pixsearch_core.evaluation import plots
    from pixsearch_core.evaluation.seg_report import is_segmentation
    from pixsearch_core.evaluation.seg_report import overlays as seg_overlays

    store = store or ObjectStore()
    if not allow_mixed:
        check_comparable(store, run_uris)
    runs = [load_run(store, u) for u in run_uris]
    tabs = tables(runs, store)
    note = (
        "Metrics in %; CRAG truthfulness in [-100, 100]. Error records are excluded from the metrics.\n\n"
        + "\n".join(
            f"- {r.label}: `{r.uri}` (benchmark {r.meta.get('benchmark')}, index "
            f"{r.meta.get('index_version')}, config {r.meta.get('config_hash')})"
            for r in runs
        )
    )
    figures = []
    for i, run in enumerate(runs):
        name = f"{i:02d}-{run.uri.rstrip('/').rsplit('/', 1)[-1]}"
        if is_segmentation(run):  # predicted vs gold masks; no searches to plot
            figures += seg_overlays(run, join(out, f"overlays_{name}"), store, overlays_per_run)
            continue
        figures.append(plots.search_behaviour(run, join(out, f"search_behaviour_{name}.png"), store))
        figures += plots.mask_overlays(run, join(out, f"overlays_{name}"), store, overlays_per_run)
    rel = [f[len(out.rstrip("/")) + 1 :] for f in figures]
    md = "# Evaluation report\n\n" + note + "\n\n" + "\n".join(markdown(*t) for t in tabs)
    md += "\n### Figures\n\n" + "".join(f"![{r}]({r})\n" for r in rel)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>pixsearch eval report</title><style>"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:right}"
        "</style></head><body><h2>Evaluation report</h2>\n"
        + "".join(html_table(*t) for t in tabs)
        + "<h3>Figures</h3>\n"
        + "".join(f"<img src='{html.escape(r)}' style='max-width:900px'><br>\n" for r in rel)
        + "</body></html>\n"
    )
    md += "\n### Lineage\n\n" + "".join(f"- {r.label}: {_lineage_line(store, r.uri)}\n" for r in runs)
    md += (
        "\n`pixsearch lineage " + out + "` prints the whole chain (runs, checkpoints, training data, index, corpus).\n"
    )
    lineage.write(
        store,
        out,
        {"kind": "report", "code": lineage.code_version(), "runs": list(run_uris), "allow_mixed": allow_mixed},
    )
    store.put_bytes(join(out, "report.md"), md.encode())
    store.put_bytes(join(out, "report.html"), page.encode())
    return {"tables": [join(out, "report.md"), join(out, "report.html")], "figures": figures}

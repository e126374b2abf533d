"""The report's abstention section: missing / hallucination (and accuracy, truthfulness) per mode, split by
answerability, checked against values computed by hand from a small set of records."""

from __future__ import annotations

import pytest

from pixsearch_core.evaluation.abstention import abstention_stats
from pixsearch_core.evaluation.report import write_report
from pixsearch_core.records import RecordWriter, run_dir
from pixsearch_core.storage import ObjectStore

TITLE = "Abstention: missing and hallucination per mode (%)"


def rec(sid, qtype, correct=False, missing=False, ego=False, status="ok"):
    scores = {"correct": correct, "missing": missing, "exact_match": correct, "judged": False, "ego": ego}
    return {
        "sample_id": sid,
        "status": status,
        "error": None if status == "ok" else "boom",
        "answer": "a",
        "question": f"q {sid}",
        "scores": scores if status == "ok" else None,
        "egocentric": ego,
        "question_type": qtype,
        "searches": [],
        "n_searches": 0,
        "mask_rle": None,
        "image": None,
        "gold_mask": None,
        "timings": {},
        "replica": "local",
    }


FULL = [
    rec("u1", "unanswerable", missing=True, ego=True),  # abstained, as it should
    rec("u2", "unanswerable"),  # hallucinated
    rec("u3", "unanswerable", missing=True),
    rec("a1", "factoid", correct=True, ego=True),
    rec("a2", "multi_hop", missing=True, ego=True),  # abstained on an answerable question
    rec("a3", "identification"),  # hallucinated
    rec("a4", "no_search", correct=True),
    rec("x1", "factoid", status="error"),
]  # left out of every figure
NO_SEARCH = [rec("a1", "factoid", ego=True), rec("u1", "unanswerable", ego=True)]
NO_UNANSWERABLE = [rec("a1", "factoid", correct=True), rec("a2", "factoid", missing=True)]


def _write(root, run_id, mode, records):
    uri = run_dir(root, run_id)
    with RecordWriter(
        ObjectStore(),
        uri,
        meta={
            "benchmark": "synthcrag",
            "mode": mode,
            "model": "out/stage2/final",
            "index_version": "v1",
            "config_hash": "abc",
        },
    ) as w:
        w.write_many(records)
    return uri


def _row(md: str, label: str) -> list[str]:
    section = md.split(f"### {TITLE}")[1].split("###")[0]
    line = next(ln for ln in section.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_stats_by_hand():
    st = abstention_stats(FULL)
    # 7 scored: 2 correct (a1, a4), 3 missing (u1, u3, a2), 2 hallucinated (u2, a3); truthfulness (2*2 + 3)/7 - 1
    assert st["n"] == 7
    assert st["accuracy"] == pytest.approx(2 / 7) and st["missing"] == pytest.approx(3 / 7)
    assert st["hallucination"] == pytest.approx(2 / 7) and st["truthfulness"] == pytest.approx(0.0)
    assert st["unanswerable_n"] == 3
    assert st["unanswerable_abstained"] == pytest.approx(2 / 3)
    assert st["unanswerable_hallucinated"] == pytest.approx(1 / 3)
    assert st["answerable_abstained"] == pytest.approx(1 / 4)
    assert abstention_stats([rec("x", "factoid", status="error")]) is None
    assert abstention_stats(NO_UNANSWERABLE)["unanswerable_abstained"] is None


def test_report_section_per_mode(tmp_path):
    root = str(tmp_path / "out")
    uris = [
        _write(root, "full", "full", FULL),
        _write(root, "nos", "no_search", NO_SEARCH),
        _write(root, "plain", "whole_image", NO_UNANSWERABLE),
    ]
    write_report(uris, str(tmp_path / "report"))
    md = (tmp_path / "report" / "report.md").read_text()
    assert TITLE in md and TITLE in (tmp_path / "report" / "report.html").read_text()
    # Run | n | Acc. | Miss. | Hallu. | Truth. | Unanswerable n | abstained | hallucinated | Answerable: abstained
    assert _row(md, "final [full]") == ["7", "28.6", "42.9", "28.6", "0.0", "3", "66.7", "33.3", "25.0"]
    assert _row(md, "final [no_search]") == ["2", "0.0", "0.0", "100.0", "-100.0", "1", "0.0", "100.0", "0.0"]
    # (2 * 1 + 1) / 2 - 1 = +50 truthfulness
    assert _row(md, "final [whole_image]") == ["2", "50.0", "50.0", "0.0", "50.0", "0", "-", "-", "50.0"]
    # the same overall figures as Table 1's (the benchmark's own aggregation)
    table1 = md.split("### Table 1")[1].split("###")[0]
    line = next(ln for ln in table1.splitlines() if ln.startswith("| final [full] |"))
    overall = [c.strip() for c in line.strip("|").split("|")][1:5]  # Overall Truth., Acc., Miss., Hallu.
    assert overall == ["0.0", "28.6", "42.9", "28.6"]

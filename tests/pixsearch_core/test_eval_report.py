"""eval report: Table 1 / 6 / 7 values from hand-made records, Figure 4 counts, mask overlays, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jobs import cli
from pixsearch_core.evaluation.plots import overlay, search_stats
from pixsearch_core.evaluation.report import write_report
from pixsearch_core.masks import rle_to_mask
from pixsearch_core.records import RecordWriter, run_dir
from pixsearch_core.storage import ObjectStore
from tests.eval_run_helpers import write_crag_gold


def rle_fortran(mask: np.ndarray) -> dict:
    """Independent reference encoder: column-major runs, starting with a (maybe empty) run of zeros."""
    flat, counts, cur, run = mask.T.reshape(-1), [], False, 0
    for v in flat:
        if bool(v) != cur:
            counts.append(run)
            cur, run = bool(v), 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def verdict(correct=False, missing=False, ego=False):
    return {"correct": correct, "missing": missing, "exact_match": correct, "judged": False, "ego": ego}


def rec(sid, scores, searches=(), ego=False, mask=None, image=None, gold_mask=None, status="ok"):
    return {
        "sample_id": sid,
        "status": status,
        "error": None if status == "ok" else "boom",
        "answer": "a",
        "question": f"q {sid}",
        "scores": scores if status == "ok" else None,
        "egocentric": ego,
        "searches": [{"modality": m} for m in searches],
        "n_searches": len(searches),
        "mask_rle": mask,
        "image": image,
        "gold_mask": gold_mask,
        "timings": {},
        "replica": "local",
    }


def write_run(root, run_id, mode, records):
    store = ObjectStore()
    uri = run_dir(root, run_id)
    with RecordWriter(
        store,
        uri,
        meta={
            "benchmark": "crag_mm",
            "mode": mode,
            "model": "s3://b/ckpt/stage2",
            "index_version": "v1",
            "config_hash": "abc",
        },
    ) as w:
        w.write_many(records)
    return uri


@pytest.fixture
def runs(tmp_path):
    root = str(tmp_path / "out")
    img = np.zeros((20, 30, 3), np.uint8)
    img[..., 2] = 200
    gold = np.zeros((20, 30), bool)
    gold[5:15, 10:20] = True
    pred = np.zeros((20, 30), bool)
    pred[6:16, 12:22] = True
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(gold.astype(np.uint8) * 255).save(tmp_path / "gold.png")
    full = [
        rec(
            "e1",
            verdict(correct=True, ego=True),
            ["region", "text", "text"],
            ego=True,
            mask=rle_fortran(pred),
            image=str(tmp_path / "img.png"),
            gold_mask=str(tmp_path / "gold.png"),
        ),
        rec("e2", verdict(missing=True, ego=True), ["region"], ego=True),
        rec("n1", verdict(correct=True), ["image", "region"]),
        rec("n2", verdict()),  # a hallucination with no search
        rec("x1", None, status="error"),
    ]
    no_region = [rec("e1", verdict(ego=True), ego=True), rec("n1", verdict(correct=True))]
    budget1 = [rec("e1", verdict(correct=True, ego=True), ego=True), rec("n1", verdict())]
    uris = [
        write_run(root, "full", "full", full),
        write_run(root, "noreg", "no_region", no_region),
        write_run(root, "b1", "budget1", budget1),
    ]
    return tmp_path, pred, gold, uris


def row(md: str, table: str, label: str) -> list[str]:
    section = md.split(f"### {table}")[1].split("###")[0]
    line = next(ln for ln in section.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_report_tables_match_hand_computed_values(runs):
    tmp_path, *_, uris = runs
    paths = write_report(uris, str(tmp_path / "report"))
    md = (tmp_path / "report" / "report.md").read_text()
    # full: all 4 scored (x1 errored): 2 correct, 1 missing, 1 hallucination -> truth (4+1)/4-1 = 25%
    # ego (e1 correct, e2 missing): truth (2+1)/2-1 = 50%; non-ego (n1 correct, n2 wrong): truth 0
    assert row(md, "Table 1", "stage2 [full]") == [
        "25.0",
        "50.0",
        "25.0",
        "25.0",
        "50.0",
        "50.0",
        "50.0",
        "0.0",
        "0.0",
        "50.0",
        "0.0",
        "50.0",
        "4",
        "1",
    ]
    assert row(md, "Table 1", "stage2 [no_region]")[:4] == ["0.0", "50.0", "0.0", "50.0"]
    assert "stage2 [no_region]" in md.split("### Table 6")[1].split("###")[0]
    t7 = md.split("### Table 7")[1].split("###")[0]
    assert t7.index("[budget1]") < t7.index("[full]") and "[no_region]" not in t7
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("<table>") == 5 and "<td>25.0</td>" in html  # Table 1, behaviour, abstention, 6, 7
    assert len(paths["figures"]) == 4  # 3 search-behaviour plots + 1 overlay (only e1 has a mask)
    for f in paths["figures"]:
        assert Image.open(f).format == "PNG"


def test_search_stats_and_overlay_pixels(runs):
    tmp_path, pred, gold, uris = runs
    from pixsearch_core.evaluation.report import load_run

    stats = search_stats(load_run(ObjectStore(), uris[0]).records)
    assert stats["egocentric"]["per_sample"] == {3: 1, 1: 1}
    assert stats["egocentric"]["modality"] == {"region": 2, "text": 2}
    assert stats["non-egocentric"]["per_sample"] == {2: 1, 0: 1} and stats["non-egocentric"]["samples"] == 2
    assert (rle_to_mask(rle_fortran(pred)) == pred).all()
    img = np.zeros((20, 30, 3), np.uint8)
    out = overlay(img, pred, gold)
    assert tuple(out[10, 15]) == (127, 0, 0)  # inside pred, inside gold: red blend
    assert tuple(out[5, 10]) == (0, 255, 0)  # gold corner: green boundary
    assert tuple(out[0, 0]) == (0, 0, 0)  # outside both: untouched


def test_cli_run_oracle_then_report(tmp_path, capsys):
    gold = write_crag_gold(tmp_path / "validation.jsonl", n=6)
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "eval",
                "run",
                "--sequential",
                "--benchmark",
                "crag_mm",
                "--data",
                str(gold),
                "--model",
                "oracle",
                "--index",
                "none",
                "--mode",
                "no_search",
                "--run-id",
                "oracle",
                "--out",
                str(out),
                "ray.batch_size=4",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["aggregate"]["all"]["accuracy"] == 1.0 and summary["records"] == 6
    assert cli.main(["eval", "report", str(out / "runs" / "oracle"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert row(md, "Table 1", "oracle [no_search]")[:2] == ["100.0", "100.0"]
    assert (
        cli.main(
            [
                "eval",
                "run",
                "--sequential",
                "--benchmark",
                "crag_mm",
                "--data",
                str(gold),
                "--model",
                "oracle",
                "--index",
                "none",
                "--mode",
                "budget",
                "--out",
                str(out),
            ]
        )
        == 2
    )  # bad mode


def test_behaviour_well_formed_and_giou_by_hand(runs, tmp_path):
    from pixsearch_core.evaluation.behaviour import behaviour

    _, pred, gold, _ = runs
    g = str(tmp_path / "gold.png")

    def r(sid, ego, searches, issues, gold_types, gold_mask=g, answer="a"):
        return {
            "sample_id": sid,
            "status": "ok",
            "egocentric": ego,
            "searches": searches,
            "answer": answer,
            "trajectory": {"issues": [{"kind": k} for k in issues]},
            "gold_mask": gold_mask,
            "gold_query_types": gold_types,
        }

    region = {"modality": "region", "requested": "region", "mask_rle": rle_fortran(pred)}
    other = {"modality": "region", "mask_rle": rle_fortran(~pred)}  # a later region search is not scored
    records = [
        r("e1", True, [region, {"modality": "text"}, other], [], ["REGION", "TEXT"]),
        r("e2", True, [], ["unclosed_search"], ["REGION"], answer=""),
        r("e3", True, [{"modality": "image", "requested": "region"}], ["region_no_entity"], ["REGION"]),
        r("n1", False, [{"modality": "image"}], ["search_failed"], ["IMAGE"]),
        r("n2", False, [], [], ["IMAGE"], gold_mask=str(tmp_path / "missing.png")),
        {"sample_id": "x", "status": "error", "egocentric": True},
    ]
    st = behaviour(records)
    iou = 72 / (128 + 1e-5)  # gold 10x10, prediction shifted by (1, 2): I = 9*8, U = 100 + 100 - 72
    ego = st["ego"]
    assert ego["n"] == 3 and ego["well_formed"] == pytest.approx(1 / 3) and ego["answered"] == pytest.approx(2 / 3)
    assert ego["searches"] == pytest.approx(4 / 3) and (ego["region_searches"], ego["text_searches"]) == (2, 1)
    assert ego["n_masks"] == 1 and ego["giou"] == pytest.approx(iou / (1 + 1e-5))
    assert ego["n_region_gold"] == 3 and ego["giou_region_gold"] == pytest.approx(iou / (3 + 1e-5))
    # e1 asked for and sent a region; e3 asked but fell back to the whole image; e2 never searched
    assert ego["region_chosen"] == pytest.approx(2 / 3) and ego["region_sent"] == pytest.approx(1 / 3)
    assert ego["n_region_sent"] == 1 and ego["giou_region_chosen"] == pytest.approx(iou / (1 + 1e-5))
    non = st["non_ego"]
    assert non["well_formed"] == 1.0  # a backend failure is not a format error
    assert non["n_masks"] == 0 and non["giou"] is None and non["gold_mask_unreadable"] == 1
    assert st["all"]["n"] == 5 and st["all"]["well_formed"] == 0.6
    assert non["region_chosen"] is None and non["n_region_gold"] == 0


def test_ordering_table_states_accuracy_margins_and_n(tmp_path):
    """Full vs whole image vs no search per group, from hand-made verdicts: 4 egocentric + 2 other questions."""
    root = str(tmp_path / "out")
    ego = lambda k: [rec(f"e{i}", verdict(correct=i < k, ego=True), ego=True) for i in range(4)]  # noqa: E731
    non = lambda k: [rec(f"n{i}", verdict(correct=i < k)) for i in range(2)]  # noqa: E731
    uris = [
        write_run(root, "f", "full", ego(3) + non(1)),
        write_run(root, "w", "whole_image", ego(2) + non(1)),
        write_run(root, "z", "no_search", ego(1) + non(2)),
    ]
    write_report(uris, str(tmp_path / "report"))
    md = (tmp_path / "report" / "report.md").read_text()
    table = "Full vs whole image vs no search"
    assert row(md, table, "Egocentric") == [
        "4",
        "75.0",
        "50.0",
        "25.0",
        "+25.0 (+1 questions; won 1, lost 0, p=1)",  # full alone right on e2; whole image alone on e1
        "+25.0 (+1 questions; won 1, lost 0, p=1)",
        "yes",
        "no",  # one question either way is no evidence
    ]
    assert row(md, table, "Non-Egocentric") == [
        "2",
        "50.0",
        "50.0",
        "100.0",
        "+0.0 (+0 questions; won 0, lost 0, p=1)",
        "-50.0 (-1 questions; won 0, lost 1, p=1)",
        "no",
        "no",
    ]
    assert row(md, table, "Overall")[0] == "6"
    write_report(uris[:2], str(tmp_path / "two"))  # without a no-search run there is no such table
    assert table not in (tmp_path / "two" / "report.md").read_text()


def test_ordering_is_significant_only_when_both_paired_tests_are(tmp_path):
    """20 egocentric questions: full right on 18, whole image on the first 10 of those, no search on the first 2:
    each margin is 8 questions won and none lost (exact McNemar p = 2 / 2^8). The same margins made of wins and
    losses (full loses 4 and wins 12) are no longer significant."""
    root = str(tmp_path / "out")

    def run(name, mode, right):
        return write_run(
            root, name, mode, [rec(f"e{i}", verdict(correct=i in right, ego=True), ego=True) for i in range(20)]
        )

    whole = run("w", "whole_image", set(range(10)))
    clear = [run("f", "full", set(range(18))), whole, run("z", "no_search", {0, 1})]
    write_report(clear, str(tmp_path / "clear"))
    table = "Full vs whole image vs no search"
    got = row((tmp_path / "clear" / "report.md").read_text(), table, "Egocentric")
    assert got[4:] == [
        "+40.0 (+8 questions; won 8, lost 0, p=0.0078)",
        "+40.0 (+8 questions; won 8, lost 0, p=0.0078)",
        "yes",
        "yes",
    ]
    mixed = [run("f2", "full", set(range(4, 20)) - {10, 11}), whole, run("z", "no_search", {0, 1})]
    write_report(mixed, str(tmp_path / "mixed"))
    got = row((tmp_path / "mixed" / "report.md").read_text(), table, "Egocentric")
    assert got[4] == "+20.0 (+4 questions; won 8, lost 4, p=0.39)" and got[6:] == ["yes", "no"]


def test_mcnemar_p_is_the_exact_two_sided_binomial_tail():
    """Against the formula by hand: p = min(1, 2 * sum_{i <= min(b, c)} C(b + c, i) / 2^(b + c))."""
    from math import comb

    from pixsearch_core.evaluation.breakdown import mcnemar_p

    for b, c in [(16, 2), (2, 16), (8, 0), (5, 5), (3, 7), (1, 0), (40, 25)]:
        n = b + c
        want = min(1.0, 2 * sum(comb(n, i) for i in range(min(b, c) + 1)) / 2**n)
        assert mcnemar_p(b, c) == pytest.approx(want, rel=1e-9), (b, c)
    assert mcnemar_p(0, 0) == 1.0  # nothing tells the runs apart


def test_accuracy_by_question_type_counts_each_group_and_mode(tmp_path):
    """Per group and question type, each run's accuracy with its counts, from hand-made verdicts: the table that
    shows which questions a mode wins (a mode can lead only on questions no search can answer)."""
    root = str(tmp_path / "out")

    def typed(sid, qtype, correct, ego):
        return {**rec(sid, verdict(correct=correct, ego=ego), ego=ego), "question_type": qtype}

    full = [typed("e0", "factoid", True, True), typed("e1", "factoid", False, True), typed("e2", "colour", True, True)]
    full += [typed("n0", "factoid", True, False)]
    blind = [
        typed("e0", "factoid", False, True),
        typed("e1", "factoid", False, True),
        typed("e2", "colour", True, True),
    ]
    blind += [typed("n0", "factoid", False, False), {**rec("x", None, status="error"), "question_type": "factoid"}]
    uris = [write_run(root, "f", "full", full), write_run(root, "z", "no_search", blind)]
    write_report(uris, str(tmp_path / "report"))
    md = (tmp_path / "report" / "report.md").read_text()
    section = md.split("### Accuracy by question type")[1].split("###")[0]
    lines = [[c.strip() for c in ln.strip("|").split("|")] for ln in section.splitlines() if ln.startswith("| ")]
    assert lines[0] == ["Group", "Question type", "stage2 [full]", "stage2 [no_search]"]
    assert lines[1:] == [
        ["Egocentric", "colour", "100.0 (1 of 1)", "100.0 (1 of 1)"],
        ["Egocentric", "factoid", "50.0 (1 of 2)", "0.0 (0 of 2)"],
        ["Non-Egocentric", "factoid", "100.0 (1 of 1)", "0.0 (0 of 1)"],  # the error record is left out
        ["Overall", "colour", "100.0 (1 of 1)", "100.0 (1 of 1)"],
        ["Overall", "factoid", "66.7 (2 of 3)", "0.0 (0 of 3)"],
    ]


def test_target_document_retrieved_counts_finds_and_right_answers_per_group(tmp_path):
    """How often a mode's searches returned the target's document (any search), over the questions whose gold
    trajectory searches, and how many of those it answered right; picture questions, error records and records
    without a target document are left out."""
    root = str(tmp_path / "out")

    def found(sid, correct, ego, ids, gold_types=("REGION",), doc="d-x"):
        r = rec(sid, verdict(correct=correct, ego=ego), ego=ego)
        r["searches"] = [{"modality": "region", "evidence_ids": list(i)} for i in ids]
        return {**r, "gold_doc_id": doc, "gold_query_types": list(gold_types)}

    full = [
        found("e0", True, True, [["d-x"]]),
        found("e1", False, True, [["d-y"], ["d-z", "d-x"]]),  # found by the second search, answered wrong
        found("e2", True, True, [["d-y"]]),  # right without the document (a lucky guess): not "right when found"
        found("e3", True, True, [], gold_types=()),  # a colour question: no document to find
        found("n0", False, False, [["d-y"]]),
        {**rec("n1", None, status="error"), "gold_doc_id": "d-x", "gold_query_types": ["IMAGE"]},
    ]
    plain = [rec("e0", verdict(correct=True, ego=True), ego=True)]  # a benchmark that names no documents
    uris = [write_run(root, "f", "full", full), write_run(root, "z", "no_search", plain)]
    write_report(uris, str(tmp_path / "report"))
    md = (tmp_path / "report" / "report.md").read_text()
    section = md.split("### Target's document retrieved")[1].split("###")[0]
    lines = [[c.strip() for c in ln.strip("|").split("|")] for ln in section.splitlines() if ln.startswith("| ")]
    assert lines[0] == ["Group", "stage2 [full]", "stage2 [no_search]"]
    assert lines[1:] == [
        ["Egocentric", "2 of 3 (66.7); right 1", "-"],
        ["Non-Egocentric", "0 of 1 (0.0); right 0", "-"],
        ["Overall", "2 of 4 (50.0); right 1", "-"],
    ]
    assert md.index("### Target's document retrieved") < md.index("### Search behaviour")
    write_report(uris[1:], str(tmp_path / "plain"))
    assert "Target's document" not in (tmp_path / "plain" / "report.md").read_text()


def test_paired_counts_use_only_questions_scored_in_both_runs():
    """A question missing from one run, an error record, or a record without a sample id is no evidence either way."""
    from pixsearch_core.evaluation.breakdown import paired_counts

    a = [rec("e0", verdict(correct=True, ego=True), ego=True), rec("e1", verdict(correct=True, ego=True), ego=True)]
    a += [rec("e2", verdict(correct=True, ego=True), ego=True), {**rec("e3", verdict(correct=True)), "sample_id": None}]
    a += [rec("n0", verdict(correct=False))]
    b = [rec("e0", verdict(correct=False, ego=True), ego=True), rec("e1", None, status="error")]
    b += [{**rec("e3", verdict(correct=False)), "sample_id": None}, rec("n0", verdict(correct=True))]
    got = paired_counts(a, b)
    assert got == {"all": [1, 1], "ego": [1, 0], "non_ego": [0, 1]}  # e0 won, n0 lost; e1, e2, e3 not paired

"""Unanswerable SynthCRAG questions: made at the stated share in both splits, their evidence (the corpus document
and the gold trajectory's evidence alike) lacks the answer, the target is the phrase CRAG-MM counts as missing."""

from __future__ import annotations

import json
import re

import pytest

from pixsearch_core.metrics.crag import is_missing
from pixsearch_core.synthcrag import WorldConfig, generate_world
from pixsearch_core.synthcrag.unanswerable import IDK, plan_unanswerable
from pixsearch_core.synthcrag.write import write_synthcrag

SMALL = WorldConfig(seed=3, n_entities=24, n_makers=4, n_places=4)
EVIDENCE = re.compile(r"<information>Doc 1 \((.*?)\): (.*?)</information>")
YEAR = re.compile(r"\b(18|19|20)\d\d\b")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    counts = write_synthcrag(
        generate_world(SMALL), str(out), scenes_per_entity=2, questions_per_scene=2, unanswerable_share=0.25
    )
    return out, counts


def test_idk_is_what_the_crag_metric_counts_as_missing():
    assert is_missing(IDK) and is_missing(f"is the Foo. Answer: {IDK}")


def test_the_stated_share_in_each_split(world):
    out, counts = world
    w = generate_world(SMALL)
    n_slots = {s: len(w.split(s)) * 2 * 2 for s in ("train", "test")}
    total = 0
    for split in ("train", "test"):
        rows = _rows(out / "benchmark" / f"{split}.jsonl")
        assert len(rows) == n_slots[split]
        unanswerable = [r for r in rows if r["question_type"] == "unanswerable"]
        assert len(unanswerable) == round(0.25 * len(rows)) > 0, split  # exactly the share, both splits
        assert all(not r["answerable"] for r in unanswerable)
        assert all(r["answerable"] for r in rows if r["question_type"] != "unanswerable")
        total += len(unanswerable)
    assert counts["unanswerable"] == total
    assert json.loads((out / "world.json").read_text())["unanswerable_share"] == 0.25


def test_benchmark_evidence_lacks_the_answer(world):
    """The entity's corpus document (what the index returns) and the gold trajectory's evidence both lack the true
    fact, which is the row's gold answer; the target answers "I don't know"."""
    out, _ = world
    docs = {d["id"]: d["text"] for d in _rows(out / "corpus" / "docs.jsonl")}
    for split in ("train", "test"):
        for r in _rows(out / "benchmark" / f"{split}.jsonl"):
            evidence = " ".join(t for _, t in EVIDENCE.findall(r["response"]))
            if r["question_type"] != "unanswerable":
                continue
            assert r["response"].endswith(f"Answer: {IDK}") and r["query_types"], r["interaction_id"]
            assert r["ans_full"] not in docs[r["entity_id"]], r["interaction_id"]
            assert r["ans_full"] not in evidence and docs[r["entity_id"]] in evidence
            asked_year = r["query"].startswith("In which year")
            assert bool(YEAR.search(docs[r["entity_id"]])) != asked_year  # the other fact is still there


def test_a_withheld_fact_is_never_asked_as_answerable(world):
    out, _ = world
    rows = [r for s in ("train", "test") for r in _rows(out / "benchmark" / f"{s}.jsonl")]
    withheld = {r["entity_id"]: r["query"][:14] for r in rows if r["question_type"] == "unanswerable"}
    for r in rows:
        if r["question_type"] == "factoid" and r["entity_id"] in withheld:
            assert r["query"][:14] != withheld[r["entity_id"]], r["interaction_id"]


def test_stage2_trains_abstention_on_counterfactual_evidence_without_the_fact(world):
    out, _ = world
    places = {p.name for p in generate_world(SMALL).places}
    rows = _rows(out / "stage2" / "train.jsonl")
    unanswerable = [r for r in rows if r["question_type"] == "unanswerable"]
    n_train = len([r for r in _rows(out / "benchmark" / "train.jsonl") if r["question_type"] == "unanswerable"])
    assert len([r for r in unanswerable if not r["id"].endswith("-ef")]) == n_train > 0
    for r in unanswerable:
        assert r["response"].endswith(f"Answer: {IDK}")
        ((_, doc),) = EVIDENCE.findall(r["response"])
        if r["question"].startswith("In which year"):
            assert not YEAR.search(doc), doc
        else:
            assert r["question"].startswith("Where was") and not any(f"in {p}" in doc for p in places), doc


def test_plan_is_exact_deterministic_and_validated():
    w = generate_world(SMALL)
    a, b = plan_unanswerable(w, 2, 2, 0.2), plan_unanswerable(w, 2, 2, 0.2)
    assert a == b and set(a.withheld) == {eid for eid, _, _ in a.slots}
    assert plan_unanswerable(w, 2, 2, 0.0).slots == frozenset()
    with pytest.raises(ValueError, match="unanswerable_share 0.9"):
        plan_unanswerable(w, 2, 2, 0.9)


def test_synthcrag_examples_carry_answerability(world):
    from pixsearch_core import registry

    out, _ = world
    examples = list(registry.get("benchmark", "synthcrag")().load(str(out)))
    unanswerable = [ex for ex in examples if not ex.metadata["answerable"]]
    assert unanswerable and all(ex.metadata["question_type"] == "unanswerable" for ex in unanswerable)
    bench = registry.get("benchmark", "synthcrag")()
    score = bench.score(unanswerable[0], f"is the Foo. Answer: {IDK}")
    assert score["missing"] and not score["correct"]  # abstaining: missing (0), not a hallucination (-1)

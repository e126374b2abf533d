"""SynthCRAG: deterministic, disjoint splits, gold masks and trajectories consistent with the documents."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re

import numpy as np
from PIL import Image

from pixsearch_core.storage import ObjectStore
from pixsearch_core.synthcrag import WorldConfig, generate_world
from pixsearch_core.synthcrag.paths import resolve
from pixsearch_core.synthcrag.unanswerable import IDK, plan_unanswerable
from pixsearch_core.synthcrag.write import write_synthcrag

SMALL = WorldConfig(seed=3, n_entities=24, n_makers=4, n_places=4)


def _tree_hashes(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "deeper" / "b", tmp_path / "c"
    write_synthcrag(generate_world(SMALL), str(a))
    write_synthcrag(generate_world(SMALL), str(b))
    write_synthcrag(generate_world(SMALL.model_copy(update={"seed": 4})), str(c))
    assert _tree_hashes(a) == _tree_hashes(b)  # byte for byte, though written at another path
    assert _tree_hashes(a) != _tree_hashes(c)


def test_world_invariants():
    w = generate_world(SMALL)
    looks = {(e.shape, e.colour, e.pattern, e.accent) for e in w.entities}
    assert len(looks) == len(w.entities), "icons must be visually distinct"
    assert len({e.name for e in w.entities}) == len(w.entities)
    train, test = {e.id for e in w.split("train")}, {e.id for e in w.split("test")}
    assert train and test and not train & test
    for e in w.entities:
        assert e.colour not in e.document() and e.shape not in e.document(), "documents must not describe looks"


def test_records_masks_and_trajectories(tmp_path):
    w = generate_world(SMALL)
    counts = write_synthcrag(w, str(tmp_path), scenes_per_entity=2)
    w = w.withholding(plan_unanswerable(w, 2, 2, 0.15).withheld)  # the writer's documents
    store = ObjectStore()
    test_rows = [json.loads(l) for l in (tmp_path / "benchmark" / "test.jsonl").read_text().splitlines()]
    assert len(test_rows) == counts["test_questions"] > 0
    by_id = {e.id: e for e in w.entities}
    test_ids = {e.id for e in w.split("test")}
    for r in test_rows:
        assert r["entity_id"] in test_ids
        mask = np.asarray(Image.open(io.BytesIO(store.get_bytes(resolve(str(tmp_path), r["gold_mask"]))))) > 127
        x0, y0, x1, y1 = r["target_box"]
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        area = mask.mean()
        # ego: side <= 0.26 of the image and a shape fills <= 0.51 of its box -> < 0.035; non-ego: side >= 0.6 and
        # the thinnest shape (star) fills ~0.2 of its box -> > 0.07
        assert (area < 0.036) if r["egocentric"] else (area > 0.06), (r["interaction_id"], area)
        assert r["response"].endswith(f"Answer: {r['ans_full'] if r['answerable'] else IDK}")
        assert r["answerable"] == (r["question_type"] != "unanswerable")
        n_search = r["response"].count("<search>")
        assert n_search == len(r["query_types"]) == {"no_search": 0, "multi_hop": 2}.get(r["question_type"], 1)
        if n_search:
            first = "REGION" if r["egocentric"] else "IMAGE"
            assert r["query_types"][0] == first
            evidence = " ".join(re.findall(r"<information>(.*?)</information>", r["response"]))
            if r["question_type"] not in ("identification", "unanswerable"):
                assert r["ans_full"] in evidence, "the answer must be retrievable, not memorised"
            assert by_id[r["entity_id"]].name in evidence


def test_synthcrag_benchmark_scores_the_crag_way(tmp_path):
    import subprocess
    import sys

    from pixsearch_core import registry

    write_synthcrag(generate_world(SMALL), str(tmp_path), scenes_per_entity=2)
    bench = registry.get("benchmark", "synthcrag")()
    examples = list(bench.load(str(tmp_path)))
    assert examples and all(ex.metadata["question_type"] for ex in examples)
    # perfect answers on egocentric rows, "I don't know" on the others
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"id": ex.id, "prediction": ex.answers[0] if ex.metadata["egocentric"] else "I don't know"})
            + "\n"
            for ex in examples
        )
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "eval",
            "score",
            "--benchmark",
            "synthcrag",
            "--gold",
            str(tmp_path),
            "--predictions",
            str(preds),
            "--judge",
            "none",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    n_ego = sum(ex.metadata["egocentric"] for ex in examples)
    assert res["ego"]["n"] == n_ego and res["ego"]["accuracy"] == 1.0 and res["ego"]["truthfulness"] == 1.0
    assert res["non_ego"]["missing"] == 1.0 and res["non_ego"]["truthfulness"] == 0.0
    assert abs(res["all"]["accuracy"] - n_ego / len(examples)) < 1e-9


def test_tiny_world_with_few_distractor_candidates(tmp_path):
    counts = write_synthcrag(generate_world(WorldConfig(seed=1, n_entities=8, n_makers=2, n_places=2)), str(tmp_path))
    assert counts["test_questions"] > 0 and counts["test_egocentric"] > 0


def test_trajectory_evidence_is_what_the_decoder_forces():
    """Stage-2 trains on the exact text the decoder inserts for one hit (top_k=1, passage not clipped)."""
    from pixsearch_core.decoding.queries import format_information
    from pixsearch_core.modeling.build import tiny_tokenizer
    from pixsearch_core.retrieval.types import Evidence
    from pixsearch_core.synthcrag.questions import info

    w = generate_world(SMALL)
    e = w.entities[0]
    ev = Evidence(doc_id=e.id, title=e.name, text=e.document(), score=1.0, index="image")
    assert info(e.name, e.document()) == format_information([ev], tiny_tokenizer(), top_k=1, max_passage_tokens=4096)


def test_stage2_trajectories_are_counterfactual_and_answerable_from_their_evidence(tmp_path):
    """Stage 2 must teach reading, not memorising: every trajectory's evidence describes a renamed entity with
    fresh facts, its answer is in that evidence, and the evidence-first twins are the same text reordered."""
    w = generate_world(SMALL)
    counts = write_synthcrag(w, str(tmp_path), scenes_per_entity=2, evidence_first_share=0.5)
    rows = [json.loads(l) for l in (tmp_path / "stage2" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == counts["stage2"] > counts["train_questions"]
    written = w.withholding(plan_unanswerable(w, 2, 2, 0.15).withheld)
    real_docs = {e.document() for e in written.entities} | {m.document() for m in w.makers}
    by_id = {r["id"]: r for r in rows}
    searched = [r for r in rows if not r["id"].endswith("-ef") and r["query_types"]]
    assert searched
    for r in searched:
        docs = re.findall(r"<information>Doc 1 \((.*?)\): (.*?)</information>", r["response"])
        assert len(docs) == len(r["query_types"])
        assert not {d for _, d in docs} & real_docs, "a training trajectory quotes a real document"
        answer = r["response"].rsplit("Answer: ", 1)[1]
        assert answer in " ".join(d for _, d in docs) if r["question_type"] != "unanswerable" else answer == IDK
    twins = [(by_id[i[:-3]], r) for i, r in by_id.items() if i.endswith("-ef")]
    assert twins
    no_search = [r["id"] for r in rows if not r["id"].endswith("-ef") and not r["query_types"]]
    assert no_search and all(i + "-ef" in by_id for i in no_search), "every no-search question gets its twin"
    for full, ef in twins:
        assert ef["query_types"] == full["query_types"][1:]
        m = re.match(
            r"(.*?)<search>(?:<region>|<image>)</search>(<information>.*?</information>)(.*)$", full["response"], re.S
        )
        if m:  # searched: evidence first, then the answer without that search
            assert ef["response"] == m.group(2) + m.group(1) + m.group(3)
        else:  # a no-search question: an unrelated training document first, the same answer after it
            assert ef["response"].startswith("<information>Doc 1 (") and ef["response"].endswith(full["response"])
            title = re.match(r"<information>Doc 1 \((.*?)\)", ef["response"]).group(1)
            assert title in {e.name for e in w.split("train")}


def test_visual_questions_join_stage2_and_leave_the_rest_of_the_world_unchanged(tmp_path):
    """Colour or count questions about every training scene (stage 1's extra scenes too), their answers those of
    the picture's target or object count; every other file keeps its bytes."""
    w = generate_world(SMALL)
    plain, visual = tmp_path / "plain", tmp_path / "visual"
    write_synthcrag(w, str(plain), scenes_per_entity=2, refer_scenes_per_entity=1)
    counts = write_synthcrag(
        w, str(visual), scenes_per_entity=2, refer_scenes_per_entity=1, visual_questions_per_scene=2
    )
    a, b = _tree_hashes(plain), _tree_hashes(visual)
    assert {k for k in a if a[k] != b.get(k)} == {"stage2/train.jsonl", "world.json"} and a.keys() == b.keys()
    rows = [json.loads(l) for l in (visual / "stage2" / "train.jsonl").read_text().splitlines()]
    before = (plain / "stage2" / "train.jsonl").read_text().splitlines()
    assert [json.dumps(r, sort_keys=True) for r in rows[: len(before)]] == [
        json.dumps(json.loads(l), sort_keys=True) for l in before
    ]
    added = rows[len(before) :]
    train = [e for e in w.entities if e.split == "train"]
    assert len(added) == 2 * (2 * len(train) + len(train)) == counts["stage2"] - len(before)
    stage1 = {json.loads(l)["image"] for l in (visual / "stage1" / "train.jsonl").read_text().splitlines()}
    assert {r["image"] for r in added} == stage1  # every training scene, the extra stage-1 ones included
    colours = {e.id: e.colour for e in train}
    kinds = set()
    for r in added:
        entity = re.fullmatch(r"(.+)-[sr]\d+-v[01](-ef)?", r["id"]).group(1)
        assert r["query_types"] == []
        answer = r["response"].rsplit("Answer: ", 1)[1]
        if r["question"].startswith("What colour"):
            assert answer == colours[entity]
            kinds.add("colour")
        else:
            assert r["question"] == "How many objects are in the image?" and int(answer) >= 2
            kinds.add("count")
        assert r["response"].startswith("<information>") == r["id"].endswith("-ef")
    assert kinds == {"colour", "count"}
    assert 0.3 < sum(r["id"].endswith("-ef") for r in added) / len(added) < 0.7
    assert json.loads((visual / "world.json").read_text())["visual_questions_per_scene"] == 2
    assert "visual_questions_per_scene" not in json.loads((plain / "world.json").read_text())


def test_fact_tails_restate_the_fact_and_change_nothing_else(tmp_path):
    """With fact tails every answerable factoid response names its fact from the evidence before answering, every
    unanswerable one says which fact is missing; questions, answers, pictures and every other trajectory keep
    their bytes (the same random draws)."""
    w = generate_world(SMALL)
    plain, tails = tmp_path / "plain", tmp_path / "tails"
    write_synthcrag(w, str(plain), scenes_per_entity=2, unanswerable_share=0.3)
    write_synthcrag(w, str(tails), scenes_per_entity=2, unanswerable_share=0.3, fact_tails=True)
    a, b = _tree_hashes(plain), _tree_hashes(tails)
    changed = {k for k in a if a[k] != b.get(k)}
    assert changed == {"stage2/train.jsonl", "benchmark/train.jsonl", "benchmark/test.jsonl", "world.json"}
    assert json.loads((tails / "world.json").read_text())["fact_tails"] is True
    assert "fact_tails" not in json.loads((plain / "world.json").read_text())
    seen = set()
    for name in ("stage2/train.jsonl", "benchmark/test.jsonl"):
        old = [json.loads(l) for l in (plain / name).read_text().splitlines()]
        new = [json.loads(l) for l in (tails / name).read_text().splitlines()]
        assert len(old) == len(new)
        for r0, r1 in zip(old, new):
            qtype = r1["question_type"]
            assert {k: v for k, v in r0.items() if "response" not in k} == {
                k: v for k, v in r1.items() if "response" not in k
            }
            if qtype not in ("factoid", "unanswerable"):
                assert r0["response"] == r1["response"]
                continue
            seen.add(qtype)
            evidence = re.search(r"<information>Doc 1 \((.+?)\): (.+?)</information>", r1["response"])
            name, doc = evidence.groups()
            tail = r1["response"].rsplit("</information>", 1)[1]  # (evidence-first rows: the subject, then the tail)
            answer = tail.rsplit("Answer: ", 1)[1]
            assert r0["response"].rsplit("Answer: ", 1)[1] == answer  # the same target
            if qtype == "unanswerable":
                assert answer == IDK and f" is the {name}; the evidence does not give " in tail
            else:
                clause = re.search(rf" is the {re.escape(name)}, (.+)\. Answer: .+$", tail).group(1)
                assert clause.endswith(answer) and answer in doc  # the fact asked, as the evidence gives it
    assert seen == {"factoid", "unanswerable"}


def test_score_reads_the_text_after_the_last_answer_mark(tmp_path):
    from pixsearch_core import registry

    write_synthcrag(generate_world(SMALL), str(tmp_path), scenes_per_entity=2)
    bench = registry.get("benchmark", "synthcrag")()
    ex = next(iter(bench.load(str(tmp_path))))
    gold = ex.answers[0]
    assert bench.score(ex, f"is the Foo. Answer: {gold}")["correct"]
    assert bench.score(ex, f"Answer: nope. Answer: {gold}")["correct"]  # the last mark counts
    assert not bench.score(ex, f"Answer: {gold}. Answer: nope")["correct"]
    assert bench.score(ex, gold)["correct"]  # no mark: the whole prediction


def test_extra_refer_scenes_add_stage1_data_and_leave_the_benchmark(tmp_path):
    w = generate_world(SMALL)
    base = write_synthcrag(w, str(tmp_path / "a"), scenes_per_entity=2)
    more = write_synthcrag(w, str(tmp_path / "b"), scenes_per_entity=2, refer_scenes_per_entity=2)
    assert (tmp_path / "a" / "benchmark" / "test.jsonl").read_bytes() == (
        tmp_path / "b" / "benchmark" / "test.jsonl"
    ).read_bytes()
    rows = [json.loads(l) for l in (tmp_path / "b" / "stage1" / "train.jsonl").read_text().splitlines()]
    train = {e.id: e for e in w.split("train")}
    assert len(rows) == more["stage1"] == base["stage1"] + 2 * len(train)
    store = ObjectStore()
    extra = [r for r in rows if "-r" in r["id"]]
    assert len(extra) == 2 * len(train)
    for r in extra:
        e = train[r["id"].rsplit("-r", 1)[0]]
        assert r["expression"] == e.description
        mask = np.asarray(Image.open(io.BytesIO(store.get_bytes(resolve(str(tmp_path / "b"), r["mask"]))))) > 127
        ys, xs = np.nonzero(mask)
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == r["box"]
        assert mask.mean() < 0.036  # egocentric: the target small


def test_eval_records_name_the_target_document(tmp_path):
    """Every SynthCRAG eval record carries its question's target document (the report's retrieval table counts
    how often the model's searches found it)."""
    from pixsearch_core import registry
    from pixsearch_core.evaluation.sample_runner import _base_record

    write_synthcrag(generate_world(SMALL), str(tmp_path), scenes_per_entity=2)
    gold = {
        json.loads(l)["interaction_id"]: json.loads(l)["entity_id"]
        for l in (tmp_path / "benchmark" / "test.jsonl").read_text().splitlines()
    }
    examples = list(registry.get("benchmark", "synthcrag")().load(str(tmp_path)))
    assert len(examples) == len(gold) > 0
    assert {ex.id: _base_record(ex)["gold_doc_id"] for ex in examples} == gold
    bare = dataclasses.replace(examples[0], metadata={"egocentric": True})  # a benchmark that names no documents
    assert "gold_doc_id" not in _base_record(bare)

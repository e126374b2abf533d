"""`pixsearch eval score` end to end on small files in each official layout; expected numbers worked by hand."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from jobs import cli
from pixsearch_core.benchmarks.base import BadRecordError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _score(capsys, *argv):
    assert cli.main(["eval", "score", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_hotpotqa_missing_scores_zero_and_unknown_ids_fail(tmp_path, capsys, caplog):
    gold = tmp_path / "hotpot_dev_distractor_v1.json"
    gold.write_text(
        json.dumps([{"_id": "a", "question": "q", "answer": "Paris"}, {"_id": "b", "question": "q", "answer": "yes"}])
    )
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "prediction": "The answer is Paris, France."}])
    out = _score(
        capsys,
        "--benchmark",
        "hotpotqa",
        "--gold",
        str(tmp_path),
        "--predictions",
        str(preds),
        "--per-example",
        str(tmp_path / "per.jsonl"),
    )
    assert out == {"em": 0.0, "f1": pytest.approx(0.4 / 2), "relaxed_em": 0.5, "relaxed_f1": pytest.approx(0.2), "n": 2}
    per = [json.loads(line) for line in (tmp_path / "per.jsonl").read_text().splitlines()]
    assert per[0]["id"] == "a" and per[1] == {"id": "b", "em": 0.0, "f1": 0.0, "relaxed_em": 0.0, "relaxed_f1": 0.0}
    _jsonl(preds, [{"id": "zz", "prediction": "x"}])
    assert cli.main(["eval", "score", "--benchmark", "hotpotqa", "--gold", str(gold), "--predictions", str(preds)]) == 2
    assert "1 prediction id(s) not in the hotpotqa gold data: 'zz'" in caplog.text


def test_nq_open_ids_are_line_numbers(tmp_path, capsys):
    gold = _jsonl(
        tmp_path / "NQ-open.dev.jsonl",
        [{"question": "q0", "answer": ["Obama", "Barack Obama"]}, {"question": "q1", "answer": ["1990"]}],
    )
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": 0, "prediction": "obama"}, {"id": "1", "prediction": "in 1991"}])
    out = _score(capsys, "--benchmark", "nq_open", "--gold", str(gold), "--predictions", str(preds))
    assert out["em"] == 0.5 and out["relaxed_em"] == 0.5 and out["f1"] == pytest.approx(0.5)


def test_popqa_tsv_accuracy(tmp_path, capsys):
    with open(tmp_path / "popQA.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["id", "subj", "question", "possible_answers"])
        w.writerow(["7", "x", "What is x's capital?", json.dumps(["Paris", "City of Light"])])
        w.writerow(["8", "y", "Who?", json.dumps(["Ann"])])
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": "7", "prediction": "It is paris."}, {"id": "8", "prediction": "Bob"}])
    out = _score(capsys, "--benchmark", "popqa", "--gold", str(tmp_path), "--predictions", str(preds))
    assert out["accuracy"] == 0.5 and out["relaxed_em"] == 0.5 and out["em"] == 0.0  # "paris" == "Paris".lower()


def test_musique_aliases_v2_f1_and_unanswerable_skipped(tmp_path, capsys):
    _jsonl(
        tmp_path / "musique_ans_v1.0_dev.jsonl",
        [
            {"id": "m1", "question": "q", "answer": "Barack Obama", "answer_aliases": ["Obama"], "answerable": True},
            {"id": "m2", "question": "q", "answer": "", "answer_aliases": [], "answerable": False},
        ],
    )
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": "m1", "prediction": "obama"}, {"id": "m2", "prediction": "x"}])
    out = _score(capsys, "--benchmark", "musique", "--gold", str(tmp_path), "--predictions", str(preds))
    assert out == {"em": 1.0, "f1": 1.0, "relaxed_em": 1.0, "relaxed_f1": 1.0, "n": 1}


def test_textvqa_layout_and_accuracy(tmp_path, capsys):
    answers = ["coca cola"] * 2 + ["Coca-Cola"] + ["coke"] * 7
    (tmp_path / "TextVQA_0.5.1_val.json").write_text(
        json.dumps(
            {
                "dataset_name": "textvqa",
                "data": [{"question_id": 34602, "question": "what brand?", "image_id": "003a", "answers": answers}],
            }
        )
    )
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": 34602, "prediction": "coca cola"}])
    out = _score(capsys, "--benchmark", "textvqa", "--gold", str(tmp_path), "--predictions", str(preds))
    assert out["accuracy"] == pytest.approx(0.9) and out["em"] == 1.0


def test_infoseek_harmonic_mean_and_missing_ignored(tmp_path, capsys, caplog):
    rows = [
        {
            "data_id": "i1",
            "question": "q",
            "answer": ["China"],
            "answer_eval": ["China", "cn"],
            "data_split": "val_unseen_question",
        },
        {
            "data_id": "i2",
            "question": "q",
            "answer": ["1990"],
            "answer_eval": ["1990"],
            "data_split": "val_unseen_question",
        },
        {
            "data_id": "i3",
            "question": "q",
            "answer": ["10"],
            "answer_eval": [{"wikidata": 10, "range": [9, 11]}],
            "data_split": "val_unseen_entity",
        },
        {"data_id": "i4", "question": "q", "answer": ["x"], "answer_eval": ["x"], "data_split": "val_unseen_entity"},
    ]
    _jsonl(tmp_path / "infoseek_val.jsonl", rows)
    _jsonl(
        tmp_path / "infoseek_val_qtype.jsonl",
        [
            {"data_id": "i1", "question_type": "String"},
            {"data_id": "i2", "question_type": "Time"},
            {"data_id": "i3", "question_type": "Numerical"},
            {"data_id": "i4", "question_type": "String"},
        ],
    )
    preds = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "i1", "prediction": "cn"},
            {"id": "i2", "prediction": "1991"},
            {"id": "i3", "prediction": "about 10 km"},
        ],
    )
    out = _score(capsys, "--benchmark", "infoseek", "--gold", str(tmp_path), "--predictions", str(preds))
    # UQ = 50.0, UE = 100.0 (i4 has no prediction: left out), HM = 66.67
    assert out["accuracy"] == pytest.approx(0.6667) and out["n"] == 3
    assert out["accuracy_unseen_question"] == 0.5 and out["accuracy_unseen_entity"] == 1.0
    (tmp_path / "infoseek_val_qtype.jsonl").unlink()
    assert (
        cli.main(["eval", "score", "--benchmark", "infoseek", "--gold", str(tmp_path), "--predictions", str(preds)])
        == 2
    )
    assert "1 of 4 infoseek gold examples have no prediction" in caplog.text
    assert "(data_id 'i1'): question_type None missing" in caplog.text


def test_oven_qid_accuracy(tmp_path, capsys):
    _jsonl(
        tmp_path / "oven_entity_val.jsonl",
        [
            {
                "data_id": "e1",
                "question": "q",
                "entity_id": "Q1",
                "entity_text": "Falcon 900",
                "data_split": "entity_val_seen",
            },
            {
                "data_id": "e2",
                "question": "q",
                "entity_id": "Q2",
                "entity_text": "Boeing",
                "data_split": "entity_val_unseen",
            },
        ],
    )
    _jsonl(
        tmp_path / "oven_query_val.jsonl",
        [
            {
                "data_id": "q1",
                "question": "q",
                "entity_id": "Q3",
                "entity_text": "Rose",
                "data_split": "query_val_seen",
            },
            {
                "data_id": "q2",
                "question": "q",
                "entity_id": "Q4",
                "entity_text": "Oak",
                "data_split": "query_val_unseen",
            },
        ],
    )
    preds = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "e1", "prediction": "Q1"},
            {"id": "e2", "prediction": "Q2"},
            {"id": "q1", "prediction": "Q3"},
            {"id": "q2", "prediction": "Oak"},
        ],
    )
    out = _score(capsys, "--benchmark", "oven", "--gold", str(tmp_path), "--predictions", str(preds))
    query = 2 / (1 / 100 + 1 / 1e-12)
    assert out["accuracy"] == pytest.approx(round(2 / (1 / query + 1 / 100), 2) / 100)
    assert out["accuracy_entity_score"] == 1.0 and out["em"] == 0.25


def test_bad_record_names_record_and_field(tmp_path):
    from pixsearch_core.benchmarks.hotpotqa import HotpotQA

    gold = tmp_path / "hotpot_dev_distractor_v1.json"
    gold.write_text(json.dumps([{"_id": "a", "question": "q"}]))
    with pytest.raises(BadRecordError, match=r"record 0: missing field 'answer'"):
        list(HotpotQA().load(str(gold)))


def test_gold_from_object_store(s3_store, tmp_path, capsys):
    uri = f"{s3_store.root}/nq/NQ-open.dev.jsonl"
    s3_store.put_bytes(uri, b'{"question": "q", "answer": ["Paris"]}\n')
    from pixsearch_core.benchmarks.evaluate import evaluate
    from pixsearch_core.benchmarks.nq_open import NQOpen

    preds = _jsonl(tmp_path / "p.jsonl", [{"id": "0", "prediction": "Paris"}])
    s3_store.put_file(f"{s3_store.root}/preds.jsonl", preds)
    out = evaluate(NQOpen(store=s3_store), f"{s3_store.root}/nq", f"{s3_store.root}/preds.jsonl")
    assert out["em"] == 1.0


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_refcoco_refer_layout(tmp_path, capsys):
    root = tmp_path / "refer" / "refcoco"
    root.mkdir(parents=True)
    (root / "instances.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 4, "width": 4}],
                "annotations": [
                    {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}
                ],
                "categories": [{"id": 1, "name": "thing"}],
            }
        )
    )
    refs = [
        {
            "ref_id": 0,
            "ann_id": 10,
            "image_id": 1,
            "category_id": 1,
            "split": "testA",
            "sent_ids": [5, 6],
            "sentences": [
                {"sent_id": 5, "sent": "Left Box ", "raw": "", "tokens": []},
                {"sent_id": 6, "sent": "the box", "raw": "", "tokens": []},
            ],
        },
        {
            "ref_id": 1,
            "ann_id": 10,
            "image_id": 1,
            "category_id": 1,
            "split": "val",
            "sent_ids": [7],
            "sentences": [{"sent_id": 7, "sent": "x", "raw": "", "tokens": []}],
        },
    ]
    (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    from pixsearch_core.benchmarks.refcoco import RefCOCO

    examples = list(RefCOCO().load(str(tmp_path / "refer"), "testA"))
    assert [e.id for e in examples] == ["5", "6"] and examples[0].question == "left box"
    gt = examples[0].mask()
    assert gt.shape == (4, 4) and gt.dtype == np.uint8 and gt[0, 0] == 1 and gt[3, 3] == 0
    pred = np.zeros((4, 4))
    pred[gt > 0] = 255
    _png(tmp_path / "pred" / "5.png", pred)
    out = _score(
        capsys,
        "--benchmark",
        "refcoco",
        "--gold",
        str(tmp_path / "refer"),
        "--split",
        "testA",
        "--predictions",
        str(tmp_path / "pred"),
    )
    area = int(gt.sum())
    # sentence 5 perfect; sentence 6 missing -> empty mask -> IoU 0
    assert out["giou"] == pytest.approx((area / (area + 1e-5)) / (2 + 1e-5))
    assert out["ciou"] == pytest.approx(area / (2 * area + 1e-10))


def test_ade20k_and_coco_stuff_miou(tmp_path, capsys):
    ann = tmp_path / "ade" / "annotations" / "validation"
    _png(ann / "ADE_val_00000001.png", [[0, 1], [2, 2]])  # -> [[255, 0], [1, 1]]
    _png(tmp_path / "pa" / "ADE_val_00000001.png", [[0, 0], [1, 0]])
    out = _score(
        capsys, "--benchmark", "ade20k", "--gold", str(tmp_path / "ade"), "--predictions", str(tmp_path / "pa")
    )
    # class 0: I=1, U=2 ; class 1: I=1, U=2 -> mIoU 0.5 ; aAcc = 2/3
    assert out["miou"] == pytest.approx(0.5) and out["aacc"] == pytest.approx(2 / 3)
    out = _score(
        capsys,
        "--benchmark",
        "ade20k",
        "--gold",
        str(tmp_path / "ade"),
        "--predictions",
        str(tmp_path / "pa"),
        "--miou-mode",
        "all_classes",
    )
    assert out["miou"] == pytest.approx(2 * (1 / (2 + 1e-10)) / 150)
    _png(tmp_path / "cs" / "val2017" / "000000000139.png", [[12, 12], [255, 0]])  # -> train ids [[11, 11], [255, 0]]
    _png(tmp_path / "pc" / "000000000139.png", [[11, 0], [0, 0]])
    out = _score(
        capsys, "--benchmark", "coco_stuff", "--gold", str(tmp_path / "cs"), "--predictions", str(tmp_path / "pc")
    )
    # class 11: I=1, U=2 ; class 0: I=1, U=2 -> mIoU 0.5 ; aAcc 2/3
    assert out["miou"] == pytest.approx(0.5) and out["aacc"] == pytest.approx(2 / 3)

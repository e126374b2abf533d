"""Bad records in training, eval and data files: quarantined at pack time with a reason, skipped by the collator,
JSONL lines that end at "\\n" only, PopQA rows without answers, REFER pickles that carry code."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from jobs import cli
from pixsearch_core.jsonl import JsonlError, parse_jsonl
from pixsearch_core.prompts.sample import Sample
from pixsearch_core.safe_pickle import UnsafePickleError, safe_loads
from pixsearch_core.storage import ObjectStore
from pixsearch_core.training.readers import Rejected, read_source
from pixsearch_core.training.shards import ShardedDataset, pack_shards

SEPARATORS = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e"  # str.splitlines() breaks at each; JSON strings may hold them


def _png(h=16, w=16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 10)).save(buf, "PNG")
    return buf.getvalue()


def _jsonl(path, rows):
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


# ---------------------------------------------------------------- 8b: JSONL lines end at "\n" only
def test_jsonl_reader_keeps_unicode_line_separators_inside_strings():
    text = "".join(json.dumps({"i": i, "s": f"a{c}b"}, ensure_ascii=False) + "\n" for i, c in enumerate(SEPARATORS))
    assert len(text.splitlines()) > len(SEPARATORS)  # what the old readers did
    rows = list(parse_jsonl(text.encode()))
    assert [r["s"] for _, r in rows] == [f"a{c}b" for c in SEPARATORS] and rows[0][0] == 1
    with pytest.raises(JsonlError, match="f.jsonl line 2"):
        list(parse_jsonl(b'{"a": 1}\n{bad\n', "f.jsonl"))


def test_eval_score_with_a_prediction_holding_u2028(tmp_path, capsys):
    gold = _jsonl(
        tmp_path / "NQ-open.dev.jsonl",
        [{"question": "q\u2028zero", "answer": ["Paris"]}, {"question": "q\u0085one", "answer": ["1990"]}],
    )
    preds = _jsonl(
        tmp_path / "p.jsonl", [{"id": 0, "prediction": "Paris\u2028France"}, {"id": 1, "prediction": "in\u20291990"}]
    )
    assert cli.main(["eval", "score", "--benchmark", "nq_open", "--gold", str(gold), "--predictions", str(preds)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 2 and out["relaxed_em"] == 1.0  # both contain their answer; neither line was split


def test_training_and_demo_readers_keep_u2028(tmp_path):
    from pipelines.demo.retrieval_check import _scenes

    (tmp_path / "img.png").write_bytes(_png())
    rows = [{"id": "t1", "image": "img.png", "question": "Which?\u2028really", "response": "It is\u2029Tom."}]
    [s] = list(read_source("trajectories", ObjectStore(), str(_jsonl(tmp_path / "train.jsonl", rows))))
    assert isinstance(s, Sample) and s.conversation[1]["content"] == "It is\u2029Tom."
    (tmp_path / "w" / "benchmark").mkdir(parents=True)
    _jsonl(tmp_path / "w" / "benchmark" / "test.jsonl", [{"image": "a.png", "query_types": ["x"], "q": "\u2028"}])
    assert _scenes(ObjectStore(), str(tmp_path / "w"), "test")[0]["q"] == "\u2028"


def test_popqa_row_without_answers_is_scored_wrong(tmp_path, capsys):
    (tmp_path / "popQA.tsv").write_text('id\tquestion\tpossible_answers\n7\tCapital?\t["Paris"]\n8\tWho?\t[]\n')
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": "7", "prediction": "Paris"}, {"id": "8", "prediction": "Ann"}])
    assert (
        cli.main(
            [
                "eval",
                "score",
                "--benchmark",
                "popqa",
                "--gold",
                str(tmp_path),
                "--predictions",
                str(preds),
                "--per-example",
                str(tmp_path / "per.jsonl"),
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 2 and out["accuracy"] == 0.5 and out["em"] == 0.5  # any([]) is False: row 8 is wrong
    per = [r for _, r in parse_jsonl((tmp_path / "per.jsonl").read_bytes())]
    assert per[1]["id"] == "8" and per[1]["accuracy"] == 0.0


# ---------------------------------------------------------------- 1: REFER pickles
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_refer_pickle_with_a_payload_is_refused(tmp_path):
    from pixsearch_core.benchmarks.refcoco import RefCOCO

    root = tmp_path / "refcoco"
    root.mkdir()
    (root / "instances.json").write_text(json.dumps({"images": [], "annotations": []}))
    marker = tmp_path / "ran"
    refs = [{"ref_id": 0, "split": "val", "sentences": [], "x": _Payload(str(marker))}]
    (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    with pytest.raises(UnsafePickleError, match="posix.mkdir|os.mkdir"):
        list(RefCOCO().load(str(tmp_path), "val"))
    assert not marker.exists()
    plain = [{"ref_id": 1, "sentences": [{"sent": "x"}], "s": {1, 2}, "t": (1.5, None, True, 2**70, 1j)}]
    assert safe_loads(pickle.dumps(plain, protocol=2)) == plain
    py2 = b"\x80\x02]q\x00(U\x04caf\xe9q\x01K\x07e."  # Python 2's [str, int], as REFER's files hold them
    assert safe_loads(py2, encoding="latin1") == ["caf\xe9", 7]


# ---------------------------------------------------------------- 8: training records
def test_bad_training_records_are_quarantined_at_pack_time(tmp_path):
    (tmp_path / "ok.png").write_bytes(_png())
    (tmp_path / "bad.png").write_bytes(_png()[:40])  # a truncated PNG: the header reads, the pixels do not
    (tmp_path / "m.png").write_bytes(_png())
    good = {"id": "good", "image": "ok.png", "question": "Q?", "response": "Answer: A"}
    rows = [
        good,
        {**good, "id": "corrupt", "image": "bad.png"},
        {**good, "id": "seven", "response": 7},
        '["a", "json", "array"]',
        {**good, "id": "escape", "image": "../../../../etc/hostname"},
        {**good, "id": "two-images", "question": "<image_features> and this?"},
    ]
    path = _jsonl(tmp_path / "traj.jsonl", rows)
    manifest = pack_shards(
        read_source("trajectories", ObjectStore(), str(path)), str(tmp_path / "shards"), per_shard=10, name="traj"
    )
    assert manifest["samples"] == 1 and manifest["rejected"] == 5
    q = {r["id"]: r["reason"] for _, r in parse_jsonl((tmp_path / "shards" / "quarantine.jsonl").read_bytes())}
    assert "image does not decode" in q["corrupt"] and "'response' should be a non-empty string" in q["seven"]
    assert "JSON list, not an object" in q[f"{path}:4"] and "leaves" in q["escape"]
    assert "internal image slot" in q["two-images"]
    assert ShardedDataset.open(str(tmp_path / "shards")).get(0, 0).id == "good"
    refer = _jsonl(
        tmp_path / "refer.jsonl",
        [
            {"id": 1, "image": "ok.png", "mask": "m.png"},
            {"id": 2, "image": "ok.png", "mask": "m.png", "expression": "it"},
        ],
    )
    items = list(read_source("refer_jsonl", ObjectStore(), str(refer)))
    assert isinstance(items[0], Rejected) and "'expression'" in items[0].reason and isinstance(items[1], Sample)


def test_collator_skips_a_sample_that_still_fails_and_the_step_goes_on():
    import torch

    from pixsearch_core.prompts.collate import Collator
    from pixsearch_core.registry import get
    from pixsearch_core.training.losses import pixsearch_loss

    torch.manual_seed(0)
    model = get("model", "tiny")()
    conv = [{"role": "user", "content": "<image>\nWhat?"}, {"role": "assistant", "content": "A cup."}]
    good = Sample(id="good", source="x", stage=1, image=_png(), conversation=conv)
    broken = Sample(id="broken", source="x", stage=1, image=b"\x89PNG not really", conversation=conv)
    collate = Collator(model.tokenizer, max_length=64, image_max_side=32, template="plain")
    batch = collate([broken, good])
    assert batch["ids"] == ["good"] and batch["skipped"] == ["broken"] and batch["weight"] == 1.0
    out = model(batch["images"], batch["input_ids"], batch["attention_mask"], span_tags=batch["tags"])
    loss, _ = pixsearch_loss(out, batch["labels"], batch["tags"], batch["gt_masks"])
    assert torch.isfinite(loss)
    twice = Sample(
        id="twice",
        source="x",
        stage=1,
        image=_png(),
        conversation=[{"role": "user", "content": "<image>\n<image_features> what?"}, conv[1]],
    )
    assert collate([twice, good])["skipped"] == ["twice"]  # two image slots: that row alone is left out
    empty = collate([broken])  # every sample failed: one blank row that the trainer weights by 0
    assert empty["skipped"] == ["broken"] and empty["weight"] == 0.0 and empty["input_ids"].shape[0] == 1


def test_a_training_run_goes_on_when_a_whole_micro_batch_fails(tmp_path, monkeypatch):
    """Every sample of the first micro-batch fails in the collator: the run logs them, takes a weight-0 step and
    finishes; the failing samples' ids are in the log."""
    import torch

    from pixsearch_core.prompts import collate as collate_mod
    from pixsearch_core.training.loss_log import read_metrics
    from pixsearch_core.training.trainer import train
    from tests._train_fixtures import clear_dist_env, fast_config, write_world

    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    torch.set_num_threads(1)
    calls, real = [], collate_mod.load_image

    def flaky(sample, max_side):
        calls.append(sample.id)
        if len(calls) <= 2:  # micro_batch_size 2: the whole first micro-batch
            raise OSError(f"cannot read {sample.id}")
        return real(sample, max_side)

    monkeypatch.setattr(collate_mod, "load_image", flaky)
    clear_dist_env()
    out = train(fast_config(write_world(str(tmp_path / "w")), tmp_path, "stage1.max_steps=2", "save_every=2"), 1)
    clear_dist_env()
    assert out["step"] == 2 and out["export"]
    rows = read_metrics(tmp_path / "run" / "stage1" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)

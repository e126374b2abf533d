"""Segmentation evaluation (paper Tables 2-3) with the tiny random model on tiny data in the official layouts.

The tiny model's numbers mean nothing; what is checked is the plumbing: the PNGs are in the layout `eval score`
reads and hold what the records say, the scores the run reports are what `eval score` computes on those PNGs,
the prompts are the stage-1 training tokens, a re-run skips finished ids, Ray gives the sequential records, and the
report shows Tables 2-3 with overlays.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsearch_core.benchmarks._semseg import read_png
from pixsearch_core.evaluation.segmentation_runner import combine_label_map
from pixsearch_core.masks import rle_to_mask
from pixsearch_core.records import read_records
from pixsearch_core.storage import ObjectStore
from tests.eval_run_helpers import cli_json, strip_volatile
from tests.seg_eval_data import write_ade20k, write_refer

DEVICE = "model.device=cpu"


def _run(bench, data, out, *extra, run_id=None, sequential=True, index=None):
    argv = ["eval", "run", "--benchmark", bench, "--data", str(data), "--model", "tiny", "--out", str(out)]
    argv += (["--sequential"] if sequential else []) + (["--run-id", run_id] if run_id else [])
    argv += ["--index", index] if index else []
    rc, summary = cli_json(*argv, DEVICE, *extra)
    assert rc == 0
    return summary


@pytest.fixture(scope="module")
def refer(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    splits = write_refer(root / "refer")
    summary = _run("refcoco", root / "refer", root / "out", "split=val", run_id="refer-seq")
    return root, splits, summary


@pytest.fixture(scope="module")
def ade(tmp_path_factory):
    root = tmp_path_factory.mktemp("ade")
    write_ade20k(root / "data")
    return root, _run("ade20k", root / "data", root / "out", run_id="ade-seq")


def test_refcoco_run_writes_official_pngs_scored_as_eval_score(refer):
    root, splits, summary = refer
    run = summary["run_uri"]
    assert summary["errors"] == 0 and summary["total"] == summary["written"] == len(splits["val"])
    pngs = sorted(p.name for p in (root / "out" / "runs" / "refer-seq" / "predictions").iterdir())
    assert pngs == sorted(f"{i}.png" for i in splits["val"])  # <sent_id>.png, the val sentences only
    from pixsearch_core.benchmarks.refcoco import RefCOCO

    gold = {ex.id: ex.mask() for ex in RefCOCO().load(str(root / "refer"), "val")}
    for r in read_records(ObjectStore(), run):
        png = read_png(Path(r["prediction"]).read_bytes())
        assert png.dtype == np.uint8 and png.shape == gold[r["sample_id"]].shape and set(np.unique(png)) <= {0, 255}
        assert np.array_equal(rle_to_mask(r["mask_rle"]), png > 0)  # the record's mask is the PNG's
        g = gold[r["sample_id"]] > 0
        inter, union = int((g & (png > 0)).sum()), int((g | (png > 0)).sum())
        assert (r["scores"]["intersection"], r["scores"]["union"]) == (inter, union)
        assert r["answer"] == f"Sure: {r['question']}." and r["seg"]["prompts"] == 1
    rc, scored = cli_json(
        "eval",
        "score",
        "--benchmark",
        "refcoco",
        "--gold",
        str(root / "refer"),
        "--split",
        "val",
        "--predictions",
        f"{run}/predictions",
    )
    assert rc == 0 and scored == summary["aggregate"] and scored["n"] == len(splits["val"])


def test_refer_prompts_are_the_stage1_training_tokens(refer):
    """The runner's prompt for a sentence is, token for token, the stage-1 sample the REFER reader makes of it."""
    from pixsearch_core.evaluation.segmentation_runner import SegmentationRunner
    from pixsearch_core.modeling.span_tagger import TAG_B, TAG_I
    from pixsearch_core.prompts.collate import Collator
    from pixsearch_core.training.readers import refer as refer_reader

    root, _, _ = refer
    runner = SegmentationRunner("tiny", "refcoco", str(root / "unused"), device="cpu")
    runner.setup()
    store = ObjectStore()
    samples = list(
        refer_reader.read(
            "refcoco",
            store,
            str(root / "refer"),
            images=str(root / "refer/images/mscoco/images/train2014"),
            split="val",
        )
    )
    assert len(samples) == 4
    train = Collator(runner.model.tokenizer, 512, 1024, "vicuna_v1")(samples)
    phrases = [s.conversation[1]["content"].removeprefix("Sure: ").removesuffix(".") for s in samples]
    ours = runner._prompts("x", phrases)
    for key in ("input_ids", "attention_mask", "tags", "labels"):
        assert ours[key].tolist() == train[key].tolist(), key
    tagged = ours["input_ids"][0][(ours["tags"][0] == TAG_B) | (ours["tags"][0] == TAG_I)]
    assert runner.model.tokenizer.decode(tagged) == phrases[0]  # the span is the phrase inside the answer


def test_resume_skips_finished_ids_and_phrase_spans(refer):
    root, splits, _ = refer
    out = root / "resume"
    first = _run("refcoco", root / "refer", out, "split=val", "limit=2", "segmentation.span=phrase", run_id="r")
    assert first["written"] == 2
    done = {p.name: p.stat().st_mtime_ns for p in (out / "runs/r/predictions").iterdir()}
    again = _run("refcoco", root / "refer", out, "split=val", "segmentation.span=phrase", run_id="r")
    assert (again["skipped"], again["written"], again["records"]) == (2, len(splits["val"]) - 2, len(splits["val"]))
    assert {n: (out / "runs/r/predictions" / n).stat().st_mtime_ns for n in done} == done  # not rewritten
    records = read_records(ObjectStore(), str(out / "runs/r"))
    assert sorted(r["sample_id"] for r in records) == sorted(splits["val"])
    assert all(r["seg"]["spans_found"] == 1 for r in records)  # phrase mode: the phrase is always the span
    third = _run(
        "refcoco", root / "refer", out, "split=val", "segmentation.span=phrase", run_id="r", index="s3://b/indices/wiki"
    )  # an index is ignored (logged): a matrix passes one to every cell
    assert (third["skipped"], third["written"]) == (len(splits["val"]), 0)


def test_ade20k_run_label_maps_scored_as_eval_score(ade):
    root, summary = ade
    run = summary["run_uri"]
    assert summary["errors"] == 0 and summary["written"] == 3
    anns = sorted((root / "data/ADEChallengeData2016/annotations/validation").iterdir())
    assert sorted(p.name for p in (root / "out/runs/ade-seq/predictions").iterdir()) == [p.name for p in anns]
    records = {r["sample_id"]: r for r in read_records(ObjectStore(), run)}
    for ann in anns:
        gold = np.asarray(Image.open(ann))
        present = sorted(int(v) - 1 for v in np.unique(gold) if v)  # ADE value k is train id k - 1; 0 = other
        r = records[ann.stem]
        assert r["seg"]["classes"] == present and r["seg"]["prompts"] == len(present)
        pred = read_png(Path(r["prediction"]).read_bytes())
        assert pred.shape == gold.shape and set(np.unique(pred)) <= set(present) | {255}
    rc, scored = cli_json(
        "eval", "score", "--benchmark", "ade20k", "--gold", str(root / "data"), "--predictions", f"{run}/predictions"
    )
    assert rc == 0 and scored == summary["aggregate"]


def test_ade20k_all_classes_and_a_missing_image_is_an_error_record(tmp_path):
    write_ade20k(tmp_path / "data")
    (tmp_path / "data/ADEChallengeData2016/images/validation/ADE_val_00000002.jpg").unlink()
    s = _run(
        "ade20k",
        tmp_path / "data",
        tmp_path / "out",
        "segmentation.classes=all",
        "limit=2",
        "segmentation.prompts_per_batch=75",
        "segmentation.template=plain",
        run_id="all",
    )  # plain: short prompts
    assert (s["written"], s["errors"]) == (2, 1)
    records = {r["sample_id"]: r for r in read_records(ObjectStore(), s["run_uri"])}
    bad = records["ADE_val_00000002"]
    assert bad["status"] == "error" and "ADE_val_00000002.jpg" in bad["error"]
    ok = records["ADE_val_00000001"]
    assert ok["seg"]["prompts"] == 150 and ok["seg"]["classes"] == list(range(150))
    assert set(np.unique(read_png(Path(ok["prediction"]).read_bytes()))) <= set(range(150)) | {255}
    assert s["aggregate"]["n"] == 1  # the error record is left out


def test_combine_label_map_takes_the_best_class_over_the_threshold():
    a = np.array([[2.0, -1.0], [0.5, 0.5]], np.float32)
    b = np.array([[1.0, -0.5], [0.5, 3.0]], np.float32)
    out = combine_label_map((2, 2), [(7, a), (3, None), (9, b)], threshold=0.0)
    assert out.tolist() == [[7, 255], [7, 9]]  # ties go to the first class; no positive logit -> 255
    assert combine_label_map((2, 2), [(7, a), (9, b)], threshold=1.5).tolist() == [[7, 255], [255, 9]]
    assert combine_label_map((1, 2), [(1, None)]).tolist() == [[255, 255]]


def test_bad_requests_fail_with_clear_errors(refer, tmp_path, caplog):
    root, _, _ = refer
    data = str(root / "refer")
    assert (
        cli_json(
            "eval",
            "run",
            "--benchmark",
            "refcoco",
            "--data",
            data,
            "--model",
            "tiny",
            "--mode",
            "no_search",
            "--sequential",
            "--out",
            str(tmp_path),
        )[0]
        == 2
    )
    assert "decode mode 'no_search' does not apply" in caplog.text
    assert (
        cli_json(
            "eval",
            "run",
            "--benchmark",
            "refcoco",
            "--data",
            data,
            "--model",
            "oracle",
            "--sequential",
            "--out",
            str(tmp_path),
        )[0]
        == 2
    )
    assert "answers text benchmarks only" in caplog.text
    shutil.copytree(root / "refer" / "refcoco", tmp_path / "noimages" / "refcoco")
    assert (
        cli_json(
            "eval",
            "run",
            "--benchmark",
            "refcoco",
            "--data",
            str(tmp_path / "noimages"),
            "--model",
            "tiny",
            "--sequential",
            "--out",
            str(tmp_path),
            "split=val",
        )[0]
        == 2
    )
    assert "segmentation.images" in caplog.text and "COCO_train2014_000000000001.jpg" in caplog.text
    assert (
        cli_json("eval", "run", "--benchmark", "hotpotqa", "--data", data, "--model", "tiny", "--out", str(tmp_path))[0]
        == 2
    )
    assert "no retriever: pass --index URI|none" in caplog.text
    assert not (tmp_path / "runs").exists()


def test_report_shows_tables_2_3_and_overlays(refer, ade, tmp_path):
    from pixsearch_core.evaluation.seg_report import _pct

    (_, _, ref), (_, sem) = refer, ade
    rc, paths = cli_json(
        "eval", "report", ref["run_uri"], sem["run_uri"], "--out", str(tmp_path / "rep"), "--overlays", "2"
    )
    assert rc == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Table 2: semantic segmentation" in md and "Table 3: referring expression" in md
    assert "Table 1" not in md  # no text runs
    assert f"| tiny | {_pct(sem['aggregate']['miou'])} |" in md
    assert f"| tiny | {_pct(ref['aggregate']['giou'])} / {_pct(ref['aggregate']['ciou'])} |" in md
    assert "| ADE20K (validation) |" in md and "| RefCOCO (val) |" in md
    figs = paths["figures"]
    assert len(figs) == 4 and all((tmp_path / "rep" / f.split("/rep/")[1]).stat().st_size > 0 for f in figs)
    assert "ADE_val_00000001.png" in " ".join(figs) and "100.png" in " ".join(figs)
    assert (
        "<h3>Table 3: referring expression segmentation (gIoU / cIoU, %)</h3>"
        in (tmp_path / "rep" / "report.html").read_text()
    )


@pytest.mark.ray
def test_ray_run_gives_the_sequential_records_and_pngs(refer, ray_session):
    root, _, seq = refer
    ray_run = _run(
        "refcoco",
        root / "refer",
        root / "out",
        "split=val",
        "ray.batch_size=1",
        "ray.num_replicas=2",
        run_id="refer-ray",
        sequential=False,
    )
    assert ray_run["aggregate"] == seq["aggregate"] and ray_run["errors"] == 0
    a, b = (read_records(ObjectStore(), u) for u in (ray_run["run_uri"], seq["run_uri"]))
    assert {r["replica"] for r in a} != {"local"}
    drop = lambda rs: [{k: v for k, v in r.items() if k != "prediction"} for r in strip_volatile(rs)]
    assert drop(a) == drop(b)
    for r in b:
        assert (
            Path(r["prediction"]).read_bytes()
            == Path(f"{ray_run['run_uri']}/predictions/{r['sample_id']}.png").read_bytes()
        )


@pytest.mark.parametrize("span", ["phrase", "tagger"])
def test_runner_masks_are_the_models_predict_mask(refer, span):
    """The runner's logits for a prompt are PixSearchModel.predict_mask's on the same tokens: the phrase's tokens
    as an explicit span, or (tagger) the tagger's last span."""
    import torch

    from pixsearch_core.evaluation.segmentation_runner import SegmentationRunner
    from pixsearch_core.modeling.span_tagger import TAG_B, TAG_I

    root, _, _ = refer
    runner = SegmentationRunner("tiny", "refcoco", str(root / "unused"), device="cpu", span=span)
    runner.setup()
    image = np.array(Image.open(root / "refer/images/mscoco/images/train2014/COCO_train2014_000000000001.jpg"))
    phrase = "the left thing 0"
    (ours,) = runner._segment("x", image, [phrase])
    batch = runner._prompts("x", [phrase])
    phrase_tokens = (batch["tags"] == TAG_B) | (batch["tags"] == TAG_I)
    ref = runner.model.predict_mask(
        [image],
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        span_mask=phrase_tokens if span == "phrase" else None,
        return_details=True,
    )
    assert ours is not None and bool(ref.has_prompt[0])
    torch.testing.assert_close(torch.from_numpy(ours), ref.logits[0].float(), atol=1e-5, rtol=1e-5)


def test_class_names_are_keyed_by_train_id(tmp_path):
    from pixsearch_core.benchmarks.semseg_classes import train_id_names

    store = ObjectStore()
    write_ade20k(tmp_path)
    ade = train_id_names("ade20k", store, str(tmp_path / "ADEChallengeData2016/objectInfo150.txt"))
    assert len(ade) == 150 and (ade[0], ade[1], ade[4], ade[149]) == ("wall", "building", "tree", "class 150")
    (tmp_path / "labels.txt").write_text("0: unlabeled\n1: person\n12: street sign\n13: stop sign\n182: wood\n")
    stuff = train_id_names("coco_stuff", store, str(tmp_path / "labels.txt"))
    # value = id - 1; 11 (street sign) is one of the 11 ids that never occur; 12 -> train id 11; 181 -> 170
    assert stuff == {0: "person", 11: "stop sign", 170: "wood"}
    with pytest.raises(ValueError, match="allowed: ade20k, coco_stuff"):
        train_id_names("refcoco", store, str(tmp_path / "labels.txt"))

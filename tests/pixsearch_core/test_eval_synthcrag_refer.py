"""`synthcrag_refer`: a SynthCRAG world as a referring-segmentation benchmark (gIoU / cIoU), and `eval run` on it
from a saved checkpoint (the path the demo's mask figures come from)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixsearch_core.masks import png_to_mask
from pixsearch_core.records import read_records
from pixsearch_core.registry import get
from pixsearch_core.storage import ObjectStore
from tests.eval_run_helpers import cli_json


def _rows(world: str, split: str = "test") -> list[dict]:
    return [json.loads(line) for line in Path(world, "benchmark", f"{split}.jsonl").read_text().splitlines()]


def test_one_example_per_searched_scene_with_its_phrase_and_gold_mask(world):
    bench = get("benchmark", "synthcrag_refer")()
    rows = _rows(world)
    searched = {r["image"]: r for r in reversed(rows) if r["query_types"] and r["entity_span"]}  # first row wins
    ego = list(bench.load(world))  # the default split: egocentric test scenes
    non_ego = list(bench.load(world, "non_ego/test"))
    both = list(bench.load(world, "test"))
    assert {e.id for e in both} == {e.id for e in ego} | {e.id for e in non_ego}
    assert len({e.id for e in both}) == len(both) == len(searched) > 0
    assert ego and non_ego and all(e.metadata["egocentric"] for e in ego)
    assert not any(e.metadata["egocentric"] for e in non_ego)
    for ex in both:
        row = searched[f"scenes/test/{ex.id}.png"]
        assert ex.question == row["entity_span"].lower() and ex.metadata["egocentric"] == row["egocentric"]
        assert Path(ex.image) == Path(world, row["image"]) and Path(ex.image).is_file()
        gold = ex.mask()
        assert np.array_equal(gold > 0, png_to_mask(Path(world, row["gold_mask"]).read_bytes()))
        assert bench.score(ex, gold)["iou"] == pytest.approx(1.0) and bench.score(ex, None)["iou"] == pytest.approx(0.0)
    assert {e.id for e in bench.load(world, "ego/train")}.isdisjoint({e.id for e in ego})
    with pytest.raises(ValueError, match="ego, non_ego"):
        list(bench.load(world, "egocentric/test"))


def test_eval_run_from_a_checkpoint_writes_pngs_scored_as_eval_score(world, tmp_path):
    """`--model <checkpoint dir>` builds the trained model (its stored config) for the segmentation runner."""
    from pixsearch_core.modeling.weights import save_trainable

    ckpt = str(tmp_path / "ckpt")
    save_trainable(get("model", "tiny")(overrides=["sam.prompt_dim=16"]), ckpt)
    argv = ["eval", "run", "--benchmark", "synthcrag_refer", "--data", world, "--model", ckpt, "--sequential"]
    rc, summary = cli_json(*argv, "--out", str(tmp_path / "out"), "--run-id", "r", "model.device=cpu")
    n = len(list(get("benchmark", "synthcrag_refer")().load(world)))
    assert rc == 0 and summary["errors"] == 0 and summary["written"] == n
    records = list(read_records(ObjectStore(), summary["run_uri"]))
    assert all(Path(r["prediction"]).is_file() for r in records)
    rc, scored = cli_json(
        "eval", "score", "--benchmark", "synthcrag_refer", "--gold", world, "--predictions",
        f"{summary['run_uri']}/predictions",
    )  # fmt: skip
    assert rc == 0 and scored == summary["aggregate"] and scored["n"] == n

"""The real runner (tiny random PixSearch model + SearchInterleavedDecoder) through `run_eval`.

Skipped until the decoding adapter and the modeling package are on the branch (they are merged by the lead)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pixsearch_core.decoding.pixsearch_adapter")
pytest.importorskip("pixsearch_core.modeling.pixsearch")

from pixsearch_core.evaluation.config import EvalRunConfig  # noqa: E402
from pixsearch_core.evaluation.driver import RunRequest, run_eval  # noqa: E402
from pixsearch_core.records import read_records  # noqa: E402
from pixsearch_core.storage import ObjectStore  # noqa: E402


def test_tiny_model_run_writes_trajectories(tmp_path):
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(img)
    ego = {"bytes": base64.b64encode(img.read_bytes()).decode()}  # egocentric: the picture in the row (published)
    rows = [
        {
            "session_id": f"s{i}",
            "image_url": str(img) if i % 2 == 0 else None,
            "image": None if i % 2 == 0 else ego,
            "turns": {"interaction_id": [f"q{i}"], "query": [f"Q: what is this {i}? A:"]},
            "answers": {"interaction_id": [f"q{i}"], "ans_full": ["x"]},
        }
        for i in range(4)
    ]
    gold = tmp_path / "validation.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = EvalRunConfig(
        output=str(tmp_path / "out"), decode={"max_new_tokens": 8}, model={"device": "cpu"}, ray={"batch_size": 4}
    )
    summary = run_eval(cfg, RunRequest("crag_mm", str(gold), "tiny", "none", "full", "tiny", sequential=True))
    records = read_records(ObjectStore(), summary["run_uri"])
    assert [r["status"] for r in records] == ["ok"] * 4, [r["error"] for r in records]
    for r in records:
        traj = r["trajectory"]
        assert isinstance(r["answer"], str) and len(traj["tokens"]) == len(traj["is_forced"])
        assert 1 <= traj["generated_tokens"] <= 8

"""`pixsearch eval run --retriever cragmm` reaches CragMMSearcher: the tiny model's whole-image searches arrive at a
local server speaking the CRAG-MM search API's format, and its results are the records' evidence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobs.cli import main
from pixsearch_core.records import read_records, read_run_meta
from pixsearch_core.storage import ObjectStore
from tests.cragmm_server import CragMMServer

pytest.importorskip("pixsearch_core.decoding.pixsearch_adapter")

DEMO = Path(__file__).resolve().parents[2] / "conf" / "eval" / "demo.yaml"


def _gold(tmp_path: Path) -> Path:
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(img)
    rows = [
        {
            "session_id": f"s{i}",
            "image_url": str(img) if i < 3 else None,
            "turns": {"interaction_id": [f"q{i}"], "query": [f"what is this {i}?"]},
            "answers": {"interaction_id": [f"q{i}"], "ans_full": ["x"]},
        }
        for i in range(4)
    ]
    gold = tmp_path / "validation.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return gold


def test_eval_run_retriever_cragmm_searches_the_crag_mm_api(tmp_path, capsys):
    server = CragMMServer()
    try:
        rc = main(
            [
                "eval",
                "run",
                "--config",
                str(DEMO),
                "--benchmark",
                "crag_mm",
                "--data",
                str(_gold(tmp_path)),
                "--model",
                "tiny",
                "--retriever",
                "cragmm",
                "--mode",
                "whole_image",
                "--sequential",
                "--out",
                str(tmp_path / "out"),
                f"retriever.cragmm.url={server.url}",
                "retriever.k=2",
                "decode.max_new_tokens=4",
                "model.device=cpu",
                "template=plain",
            ]
        )
    finally:
        server.close()
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    records = {r["sample_id"]: r for r in read_records(ObjectStore(), summary["run_uri"])}
    assert [records[f"q{i}"]["status"] for i in range(4)] == ["ok"] * 3 + ["error"]  # q3 has no picture at all
    assert "no picture" in records["q3"]["error"]
    images = [r for r in server.requests if "image" in r]
    assert len(images) == 3 and all(r["image"].size == (56, 40) and r["k"] == 2 for r in images)
    for i in range(3):  # every question with an image searched it, and read the API's answer
        (search,) = records[f"q{i}"]["searches"]
        assert search["modality"] == "image" and search["evidence_ids"] == [
            "Golden Gate Bridge",
            "https://upload.wikimedia.org/b.jpg",
        ]
    meta = read_run_meta(ObjectStore(), summary["run_uri"])
    assert meta["retriever"] == "cragmm" and meta["index_version"] == f"cragmm:{server.url}"
    assert meta["mode"] == "whole_image" and meta["decode"]["top_k"] == 2

"""pipelines.steps (what the DAG tasks call): argument lists the real CLI accepts, the verify-then-publish
rule, the gate's metric lookup, the matrix, the registry."""

from __future__ import annotations

import hashlib
import json

import pytest

from indexing.manifest import read_current
from jobs.cli import build_parser
from pipelines import steps as p


def test_index_build_args_parse_as_a_non_publishing_build():
    args = build_parser().parse_args(
        ["index", *p.index_build_args("c.yaml", "out", "/d/docs.jsonl", "r.json", ["engine=sequential"])]
    )
    assert args.action == "build" and args.config == "c.yaml" and args.result == "r.json"
    assert args.overrides == [
        "output=out",
        "publish=false",
        "sources=[{kind: jsonl, path: '/d/docs.jsonl'}]",
        "engine=sequential",
    ]
    full = build_parser().parse_args(
        ["index", *p.index_build_args("c.yaml", "out", "", "r.json", [], incremental=False)]
    )
    assert full.overrides == ["output=out", "publish=false", "embeddings.reuse=false", "faiss.reuse_quantizer=false"]


def test_eval_args_parse_with_the_cell_and_run_id():
    cell = {"benchmark": "synthcrag", "data": "/w", "mode": "no_search"}
    args = build_parser().parse_args(
        p.eval_args(
            cell,
            config="e.yaml",
            model="oracle",
            index="none",
            out="o",
            run_id="m-synthcrag-no_search",
            engine="sequential",
            overrides=["limit=3"],
        )
    )
    assert (args.benchmark, args.data, args.mode, args.run_id, args.out) == (
        "synthcrag",
        "/w",
        "no_search",
        "m-synthcrag-no_search",
        "o",
    )
    assert not args.sequential and args.overrides == ["engine=sequential", "limit=3"]
    args = build_parser().parse_args(
        p.eval_args(
            cell,
            config="e.yaml",
            model="oracle",
            index=None,
            out="o",
            run_id="r",
            retriever="cragmm",
            overrides=["retriever.cragmm.url=http://h:1/search"],
        )
    )
    assert (args.retriever, args.index, args.overrides) == ("cragmm", None, ["retriever.cragmm.url=http://h:1/search"])
    with pytest.raises(ValueError, match="exactly one of index"):
        p.eval_args(cell, config="e.yaml", model="oracle", index="none", out="o", run_id="r", retriever="none")


def test_pin_index_leaves_what_has_no_versions():
    assert p.pin_index("none") == "none" and p.pin_index("http://127.0.0.1:1") == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="not an index URI to pin"):
        p.pin_index("none", "v1")


def _built(tmp_path, blob=b"vectors"):
    index = tmp_path / "indices" / "t"
    (index / "v1").mkdir(parents=True)
    (index / "v1" / "a.faiss").write_bytes(blob)
    entry = {"uri": "a.faiss", "sha256": hashlib.sha256(b"vectors").hexdigest(), "size": 7}
    (index / "v1" / "manifest.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "created_at": "2026",
                "rejects": {},
                "indices": {
                    "text": {
                        "shards": [{"faiss": entry, "embeddings": entry, "docstore": entry}],
                        "embeddings": {"embedded": 2, "reused": 98},
                        "quantizer": {"quantizer": "reused"},
                    }
                },
            }
        )
    )
    (index / "CURRENT").write_text("v0\n")
    result = tmp_path / "build.json"
    result.write_text(json.dumps({"version": "v1", "version_uri": str(index / "v1"), "index_uri": str(index)}))
    return index, str(result)


def test_verified_build_is_published(tmp_path):
    index, result = _built(tmp_path)
    built = p.verify_build(result)
    assert built["objects"] == 3 and built["previous"] == "v0"
    assert built["reuse"] == {"text": {"embedded": 2, "reused": 98, "quantizer": "reused"}}
    p.publish_build(built)
    assert read_current(p.ObjectStore(), str(index)) == "v1"


def test_corrupt_build_fails_verification_and_live_index_stays(tmp_path):
    index, result = _built(tmp_path, blob=b"vectorz")
    with pytest.raises(Exception, match="sha256"):
        p.verify_build(result)
    assert read_current(p.ObjectStore(), str(index)) == "v0"


def test_metric_gate_matrix_and_registry(tmp_path):
    agg = {"all": {"accuracy": 0.25, "truthfulness": -0.5}}
    assert p.metric(agg, "all.accuracy") == 0.25
    with pytest.raises(KeyError, match=r"'acc'.*\['accuracy', 'truthfulness'\]"):
        p.metric(agg, "all.acc")
    assert p.beats(0.25, -1) and not p.beats(0.25, 0.25) and not p.beats(0.25, 2)
    assert p.matrix_cells({"a": "/a", "b": "/b"}, ["full", "no_search"]) == [
        {"benchmark": "a", "data": "/a", "mode": "full"},
        {"benchmark": "a", "data": "/a", "mode": "no_search"},
        {"benchmark": "b", "data": "/b", "mode": "full"},
        {"benchmark": "b", "data": "/b", "mode": "no_search"},
    ]
    with pytest.raises(ValueError, match="at least one benchmark"):
        p.matrix_cells({}, ["full"])
    uri = p.register_checkpoint(str(tmp_path / "reg"), "m1", {"checkpoint": "/ckpt", "value": 0.25})
    assert json.loads((tmp_path / "reg" / "m1.json").read_text())["checkpoint"] == "/ckpt" and uri.endswith("m1.json")
    with pytest.raises(ValueError, match="registry name"):
        p.register_checkpoint(str(tmp_path / "reg"), "../x", {})
    assert p.safe_id("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00-00-00-00-00"

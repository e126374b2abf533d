"""Index builds end to end (sequential runner, the embedded MiniLM and DINOv2 encoders): rejects, search, verify,
resume after an injected failure, publishing to S3."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from indexing import build as build_mod
from indexing.build import RejectsExceeded, build_index
from indexing.config import IndexBuildConfig
from indexing.demo_corpus import photo_files
from indexing.manifest import VerifyError, read_current, verify_manifest
from indexing.searcher import ShardedSearcher
from pixsearch_core.config import validate_config
from pixsearch_core.retrieval.types import ImageQuery, TextQuery
from pixsearch_core.storage import ObjectStore, join

DOCS = [
    (
        "volcano",
        "Volcano",
        "A volcano is a rupture in the crust of a planet that lets hot lava, volcanic ash and gases "
        "escape from a magma chamber below the surface. Volcanoes are often found where tectonic plates diverge.",
    ),
    (
        "violin",
        "Violin",
        "The violin is a wooden string instrument in the violin family. It is played with a bow "
        "and has four strings tuned in perfect fifths. Antonio Stradivari built famous violins in Cremona.",
    ),
    ("photo-chelsea", "Chelsea the cat", "An orange tabby cat with green eyes looking to the side."),
    ("photo-coffee", "A cup of coffee", "A cup of coffee with a saucer and a spoon on a red table."),
    (
        "tea",
        "Tea",
        "Tea is an aromatic beverage prepared by pouring hot water over cured leaves of Camellia "
        "sinensis, an evergreen shrub native to East Asia. After water it is the most widely consumed drink.",
    ),
]


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def corpus(tmp_path):
    """5 good documents, 3 bad ones; 2 good photos, 1 truncated, 1 of a missing document."""
    photos = {d: p for d, p, _, _ in photo_files()}
    rows = [{"id": i, "title": t, "text": x, "url": f"https://x/{i}"} for i, t, x in DOCS]
    rows += [
        {"id": "violin", "title": "dup", "text": "duplicate id"},
        {"id": "empty", "title": "E", "text": "  "},
        {"id": "huge", "title": "H", "text": "word " * 3000},
    ]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    good = photos["photo-chelsea"].read_bytes()
    (tmp_path / "corpus" / "img-000.tar").write_bytes(
        _tar(
            [
                ("photo-chelsea.png", good),
                ("photo-coffee.png", photos["photo-coffee"].read_bytes()),
                ("tea.png", good[: len(good) // 3]),
                ("nobody.png", good),
            ]
        )
    )
    return tmp_path


def _cfg(root, **over) -> IndexBuildConfig:
    data = {
        "name": "t",
        "output": str(root / "out"),
        "runner": "sequential",
        "cache_dir": str(root / "cache"),
        "sources": [
            {"kind": "jsonl", "path": str(root / "corpus" / "docs.jsonl")},
            {"kind": "webdataset", "path": str(root / "corpus" / "img-*.tar")},
        ],
        "passages": {"words": 20, "max_doc_chars": 5000},
        "shards": {"passages_per_shard": 4, "images_per_shard": 2},
        "rejects": {"max_share": 0.6},
    }
    return validate_config(IndexBuildConfig, data, overrides=[f"{k}={v}" for k, v in over.items()])


def test_build_search_verify_and_rejects(corpus):
    res = build_index(_cfg(corpus))
    m = res["manifest"]
    assert m["rejects"]["by_reason"] == {
        "duplicate_id": 1,
        "empty_text": 1,
        "huge_text": 1,
        "missing_document": 1,
        "undecodable_image": 1,
    }
    assert m["corpus"]["counts"]["documents"] == 5 and m["corpus"]["counts"]["inputs"] == 12
    text, image = m["indices"]["text"], m["indices"]["image"]
    # 20-word passages: volcano 2 (35 words), violin 2 (32), chelsea 1, coffee 1, tea 2 (32) -> 8 passages
    assert text["count"] == 8 and [s["name"] for s in text["shards"]] == ["text-00000", "text-00001"]
    assert [(s["id_start"], s["id_end"]) for s in text["shards"]] == [(0, 4), (4, 8)]
    assert image["count"] == 2 and image["shards"][1]["id_end"] == 3  # the truncated image keeps its id slot
    assert text["factory"] == "IDMap,Flat" and text["dim"] == 384 and image["dim"] == 384
    rejected = [json.loads(line) for line in (corpus / "out/indices/t" / m["version"] / "rejects.jsonl").open()]
    assert {r["id"] for r in rejected} >= {"empty", "huge", "tea.png", "nobody.png"}

    searcher = ShardedSearcher(str(corpus / "out/indices/t"), cache_dir=str(corpus / "cache"))
    hits = searcher.search(TextQuery("Antonio Stradivari built famous violins in Cremona"), k=3)
    assert hits[0].doc_id == "violin" and hits[0].index == "text" and hits[0].title == "Violin"
    assert hits[0].score >= hits[1].score >= hits[2].score
    from PIL import Image

    cat = Image.open(next(p for d, p, _, _ in photo_files() if d == "photo-chelsea"))
    img_hits, txt_hits = searcher.search_many([ImageQuery(cat), TextQuery("magma and lava")], k=2)
    assert img_hits[0].doc_id == "photo-chelsea" and img_hits[0].index == "image"
    assert img_hits[0].title == "Chelsea the cat" and img_hits[0].meta["image_key"] == "photo-chelsea.png"
    assert txt_hits[0].doc_id == "volcano"

    root = res["version_uri"]
    assert verify_manifest(ObjectStore(), root) == 3 * 4 + 1
    shard = corpus / "out/indices/t" / m["version"] / text["shards"][1]["faiss"]["uri"]
    blob = shard.read_bytes()
    shard.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))  # one flipped byte
    with pytest.raises(VerifyError, match="text-00001.faiss"):
        verify_manifest(ObjectStore(), root)


def test_too_many_rejects_fail_loudly_and_publish_nothing(corpus):
    with pytest.raises(RejectsExceeded, match=r"rejected .* > rejects.max_share=10.0%"):
        build_index(_cfg(corpus, **{"rejects.max_share": 0.1}))
    assert read_current(ObjectStore(), str(corpus / "out/indices/t")) is None


def test_resume_after_failure_keeps_current_and_reuses_finished_shards(corpus, monkeypatch):
    store = ObjectStore()
    first = build_index(_cfg(corpus))
    index_uri = str(corpus / "out/indices/t")
    with (corpus / "corpus" / "docs.jsonl").open("a") as f:  # new input -> a new version
        f.write(json.dumps({"id": "owl", "title": "Owl", "text": "Owls are nocturnal birds of prey."}) + "\n")
    monkeypatch.setenv("PIXSEARCH_INJECT_FAILURE", "text-00001")
    with pytest.raises(RuntimeError, match="injected failure in text-00001"):
        build_index(_cfg(corpus))
    assert read_current(store, index_uri) == first["manifest"]["version"]  # the old version stays live
    monkeypatch.delenv("PIXSEARCH_INJECT_FAILURE")
    ran = []
    real = build_mod.embed_shard
    monkeypatch.setattr(
        build_mod, "embed_shard", lambda p: ran.append(p["shard"]["kind"] + str(p["shard"]["index"])) or real(p)
    )
    second = build_index(_cfg(corpus))
    assert "text0" not in ran and "text1" in ran  # text-00000 finished before the crash: reused, not re-embedded
    image = second["manifest"]["indices"]["image"]  # unchanged photos: vectors from the first build's store
    assert image["embeddings"] == {"embedded": 0, "reused": 2, "store": image["embeddings"]["store"]}
    assert second["manifest"]["rejects"]["by_reason"]["undecodable_image"] == 1  # a bad image is never stored
    assert read_current(store, index_uri) == second["manifest"]["version"] != first["manifest"]["version"]
    verify_manifest(store, second["version_uri"])
    again = build_index(_cfg(corpus))  # same input, same config: nothing to do
    assert again["reused"] and again["version_uri"] == second["version_uri"]


@pytest.mark.s3
def test_publish_to_s3_and_search_from_it(corpus, s3_store):
    from pixsearch_core.storage import StorageConfig

    storage = s3_store.config.model_dump()
    for f in ("docs.jsonl", "img-000.tar"):  # read the corpus from S3 too
        s3_store.put_file(join(s3_store.root, "corpus", f), corpus / "corpus" / f)
    sources = [
        {"kind": "jsonl", "path": join(s3_store.root, "corpus/docs.jsonl")},
        {"kind": "webdataset", "path": join(s3_store.root, "corpus/*.tar")},
    ]
    cfg = _cfg(
        corpus,
        output=s3_store.root,
        storage=json.dumps(storage),
        sources=json.dumps(sources),
        **{"faiss.exact_max_vectors": 1},
    )  # -> an IVF index, trained on the driver
    res = build_index(cfg)
    assert res["version_uri"].startswith("s3://")
    assert res["manifest"]["indices"]["text"]["factory"] == "IVF1,Flat"
    assert res["manifest"]["indices"]["image"]["count"] == 2 and res["manifest"]["rejects"]["total"] == 5
    assert s3_store.get_bytes(join(s3_store.root, "indices/t/CURRENT")).decode().strip() == res["manifest"]["version"]
    assert not list(s3_store.list(join(res["version_uri"], "staging")))  # staging removed after publishing
    searcher = ShardedSearcher(
        join(s3_store.root, "indices/t"), storage=StorageConfig(**storage), cache_dir=str(corpus / "cache2")
    )
    assert searcher.search(TextQuery("hot water over the leaves of Camellia sinensis"), 1)[0].doc_id == "tea"


def _without_clock(path):
    """A file's bytes, or for the JSON bookkeeping files their content without wall-clock fields."""
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            for clock in ("created_at", "seconds", "stats"):  # when and how fast, not what
                data.pop(clock, None)
        return json.dumps(data, sort_keys=True)
    return path.read_bytes()


def test_two_builds_from_scratch_are_bit_identical(corpus):
    """The same build run again from nothing (output and model cache removed): the same version id and the same
    bytes in every shard, docstore, embedding and trained-index file; only wall-clock fields differ."""
    import shutil

    a = build_index(_cfg(corpus))
    (corpus / "out").rename(corpus / "first")
    shutil.rmtree(corpus / "cache", ignore_errors=True)
    b = build_index(_cfg(corpus))
    assert not b["reused"] and a["manifest"]["version"] == b["manifest"]["version"]
    ra, rb = corpus / "first/indices/t" / a["manifest"]["version"], corpus / "out/indices/t" / b["manifest"]["version"]
    files = sorted(p.relative_to(ra) for p in ra.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(rb) for p in rb.rglob("*") if p.is_file())
    assert any(f.suffix == ".faiss" for f in files) and any(f.suffix == ".parquet" for f in files)
    differ = [str(f) for f in files if _without_clock(ra / f) != _without_clock(rb / f)]
    assert not differ, differ

"""Index building blocks without models: readers, passages, the shard plan, the FAISS family choice."""

from __future__ import annotations

import base64
import bz2
import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexing.config import FaissConfig, PassageConfig, SourceConfig
from indexing.faiss_build import choose_factory, default_nprobe, sample_rows
from indexing.passages import split_passages
from indexing.readers import read_source, strip_markup
from indexing.shard_plan import shard_name, shard_ranges
from pixsearch_core.storage import ObjectStore

DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
<page><title>Ada Lovelace</title><ns>0</ns><id>7</id><revision><text>'''Ada''' wrote the first [[computer program|program]].
{{Infobox person|name=Ada}}&lt;ref&gt;{{cite book|title=X}}&lt;/ref&gt;
== Life ==
Born in [[London]].[[File:Ada.jpg|thumb|A portrait]][[Category:Mathematicians]]</text></revision></page>
<page><title>Talk:Ada</title><ns>1</ns><id>8</id><revision><text>talk page</text></revision></page>
<page><title>Lovelace</title><ns>0</ns><id>9</id><redirect title="Ada Lovelace"/><revision><text>#REDIRECT [[Ada Lovelace]]</text></revision></page>
</mediawiki>"""


def _png(color=(255, 0, 0)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


def test_mediawiki_dump_streams_main_namespace_without_markup(tmp_path):
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(bz2.compress(DUMP.encode()))
    docs, images = read_source(SourceConfig(kind="mediawiki", path=str(path)), ObjectStore(), str(tmp_path))
    docs = list(docs)
    assert [d["id"] for d in docs] == ["7"]  # talk page and redirect skipped
    assert docs[0]["title"] == "Ada Lovelace" and docs[0]["url"].endswith("/Ada_Lovelace")
    assert docs[0]["text"] == "Ada wrote the first program.\n\nLife\nBorn in London."
    assert list(images) == []


def test_strip_markup_drops_files_and_refs():
    assert strip_markup("A [[File:x.png|thumb|cap [[y]]]] b<ref>r</ref> {{t|1}} c") == "A b c"


def test_jsonl_and_parquet_records_with_images(tmp_path):
    png = _png()
    (tmp_path / "img.png").write_bytes(png)
    rows = [
        {"id": "a", "title": "A", "text": "alpha", "url": "u", "image": "img.png"},
        {"id": "b", "title": "B", "text": "beta", "url": "u", "image": {"bytes": base64.b64encode(png).decode()}},
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    docs = list(read_source(SourceConfig(kind="jsonl", path=str(tmp_path / "d.jsonl")), ObjectStore(), "")[0])
    assert docs[0]["image"] == str(tmp_path / "img.png")  # relative path resolved against the file
    assert docs[1]["image"] == png
    assert docs[2]["_reject"] == "bad_record"
    pq.write_table(
        pa.Table.from_pylist([{"id": "c", "title": "C", "text": "gamma", "url": "", "image": png}]),
        tmp_path / "d.parquet",
    )
    docs = list(read_source(SourceConfig(kind="parquet", path=str(tmp_path / "*.parquet")), ObjectStore(), "")[0])
    assert docs == [{"id": "c", "title": "C", "text": "gamma", "url": "", "image": png}]


def test_webdataset_images_keyed_by_document_id(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [
            ("doc1.jpg", _png()),
            ("x7.png", _png()),
            ("x7.json", b'{"doc_id": "doc.7"}'),
            ("lonely.txt", b"no image"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "s-000.tar").write_bytes(buf.getvalue())
    _, images = read_source(SourceConfig(kind="webdataset", path=str(tmp_path)), ObjectStore(), "")
    images = list(images)
    assert [(i.get("doc_id"), i.get("key")) for i in images[:2]] == [("doc1", "doc1.jpg"), ("doc.7", "x7.png")]
    assert images[2]["_reject"] == "no_image"


def test_missing_source_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_source(SourceConfig(kind="jsonl", path=str(tmp_path / "nothing-here")), ObjectStore(), "")


def test_passages_hand_worked():
    text = " ".join(f"w{i}" for i in range(23))
    cfg = PassageConfig(words=10, overlap=0)
    # 23 words: the 3-word tail is not shorter than words // 4 = 2, so it stays a passage of its own
    assert split_passages(text, cfg) == [
        " ".join(f"w{i}" for i in range(0, 10)),
        " ".join(f"w{i}" for i in range(10, 20)),
        " ".join(f"w{i}" for i in range(20, 23)),
    ]
    # a 1-word tail (< 10 // 4) joins the previous passage
    assert split_passages(" ".join(["x"] * 21), cfg)[-1] == " ".join(["x"] * 11)
    over = split_passages(" ".join(f"w{i}" for i in range(16)), PassageConfig(words=10, overlap=4))
    assert over == [" ".join(f"w{i}" for i in range(0, 10)), " ".join(f"w{i}" for i in range(6, 16))]
    assert split_passages("   ", cfg) == []
    with pytest.raises(ValueError, match="overlap"):
        PassageConfig(words=10, overlap=10)


def test_shard_plan_ranges_and_names():
    assert shard_ranges(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert shard_ranges(0, 10) == []
    assert shard_name("text", 3) == "text-00003" and shard_name("image", 12345) == "image-12345"
    with pytest.raises(ValueError, match="allowed"):
        shard_name("audio", 0)


def test_faiss_family_follows_count_and_budget():
    cfg = FaissConfig(memory_budget_mb=1024, exact_max_vectors=100_000)
    assert choose_factory(5_000, 384, cfg) == "IDMap,Flat"
    assert choose_factory(500_000, 384, cfg) == "IVF2048,Flat"  # 4*sqrt(5e5)=2828 -> 2^11; 787 MB fits
    # 6M x 768 floats = 18 GB > 256 MiB: PQ codes of m bytes + 8-byte id; 6M * 40 = 240 MB fits, 6M * 56 does not
    assert choose_factory(6_000_000, 768, FaissConfig(memory_budget_mb=256)) == "OPQ32_128,IVF8192,PQ32x8"
    assert choose_factory(10, 4, FaissConfig(factory="HNSW32")) == "HNSW32"
    assert default_nprobe("IDMap,Flat", cfg) is None and default_nprobe("IVF4096,Flat", cfg) == 256
    with pytest.raises(ValueError, match="memory_budget_mb"):
        choose_factory(10**9, 768, FaissConfig(memory_budget_mb=1))


def test_training_sample_is_deterministic_and_bounded():
    a, b = sample_rows(1000, 100, seed=3), sample_rows(1000, 100, seed=3)
    assert np.array_equal(a, b) and len(set(a)) == 100 and a.max() < 1000 and np.all(np.diff(a) > 0)
    assert np.array_equal(sample_rows(50, 100, 0), np.arange(50))


@pytest.fixture
def one_omp_thread():
    """OpenMP k-means crawls on a shared, busy 2-core machine (7x slower with 2 threads): train with one."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.mark.parametrize("factory", ["IDMap,Flat", "IVF16,Flat", "OPQ8_32,IVF16,PQ8x4"])
def test_sharded_build_equals_in_memory_build(factory, one_omp_thread):
    from indexing import faiss_build

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    trained = faiss_build.serialize(faiss_build.train(factory, x[:1000], seed=0))
    ids = np.arange(len(x))
    shards = [faiss_build.add_shard(trained, x[a:b], ids[a:b]) for a, b in shard_ranges(len(x), 700)]
    merged = faiss_build.merge(shards)
    whole = faiss_build.deserialize(faiss_build.add_shard(trained, x, ids))
    for index in (merged, whole):
        faiss_build.set_nprobe(index, 4)
    assert merged.ntotal == whole.ntotal == 2000
    q = x[::97]
    d_m, i_m = merged.search(q, 10)
    d_w, i_w = whole.search(q, 10)
    assert np.array_equal(i_m, i_w) and np.allclose(d_m, d_w)
    # merging per-shard top-k by score (what ShardedSearcher does) gives the same ids
    per = [faiss_build.deserialize(s) for s in shards]
    for index in per:
        faiss_build.set_nprobe(index, 4)
    hits = [index.search(q, 10) for index in per]
    for row in range(len(q)):
        cands = sorted(
            ((d[row][j], i[row][j]) for d, i in hits for j in range(10) if i[row][j] >= 0), key=lambda c: (-c[0], c[1])
        )[:10]
        assert [int(c[1]) for c in cands] == list(i_w[row])

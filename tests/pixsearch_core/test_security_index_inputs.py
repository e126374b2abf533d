"""Hostile and damaged corpus inputs: an index build quarantines each (rejects.jsonl, with its reason) and
finishes; an image path that leaves its directory is never read; id 0 is an id."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexing.build import build_index
from indexing.config import IndexBuildConfig, SourceConfig
from indexing.readers import read_source
from pixsearch_core.config import validate_config
from pixsearch_core.storage import ObjectStore, UnsafePathError, child_path, is_under, uri_under

TEXT = "Lighthouses are towers with a bright lamp that guide ships along dangerous coasts at night."


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _doc(i, **extra) -> dict:
    return {"id": i, "title": f"T{i}", "text": f"{TEXT} Number {i}.", "url": f"u/{i}", **extra}


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "hostname").write_bytes(_png())  # readable, but outside the corpus directory
    c = tmp_path / "corpus"
    (c / "img").mkdir(parents=True)
    (c / "img" / "ok.png").write_bytes(_png())
    rows = [
        _doc(0),
        _doc(1, image="img/ok.png"),
        _doc(2, image={"bytes": "abc"}),
        _doc(3, image=12345),
        _doc(4, image="../secret/hostname"),
        _doc(5, image=str(tmp_path / "secret" / "hostname")),
        _doc(6, image={"bytes": base64.b64encode(_png()).decode()}),
    ]
    (c / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "[1, 2]\n")
    full = gzip.compress("".join(json.dumps(_doc(i)) + "\n" for i in range(10, 40)).encode())
    (c / "b.jsonl.gz").write_bytes(full[: len(full) // 2])  # truncated gzip
    (c / "parquet").mkdir()
    pq.write_table(pa.Table.from_pylist([_doc("p1")]), c / "parquet" / "good.parquet")
    (c / "parquet" / "bad.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    good = _tar(
        [
            ("1.png", _png()),
            ("6.png", _png()),
            ("6.json", b'{"doc_id": "6"}'),
            ("0.png", _png()),
            ("0.json", b"{not json"),
        ]
    )
    (c / "w-000.tar").write_bytes(good)
    trunc = _tar([("10.png", _png()), ("11.png", _png() * 40)])
    (c / "w-001.tar").write_bytes(trunc[:2500])  # truncated tar, in the middle of 11.png
    return tmp_path


def _cfg(root) -> IndexBuildConfig:
    c = root / "corpus"
    data = {
        "name": "t",
        "output": str(root / "out"),
        "runner": "sequential",
        "cache_dir": str(root / "cache"),
        "sources": [
            {"kind": "jsonl", "path": str(c / "*.jsonl*")},
            {"kind": "parquet", "path": str(c / "parquet")},
            {"kind": "webdataset", "path": str(c / "w-*.tar")},
        ],
        "passages": {"words": 30},
        "rejects": {"max_share": 0.5},
    }
    return validate_config(IndexBuildConfig, data)


def test_bad_records_and_files_are_quarantined_and_the_build_finishes(corpus, monkeypatch):
    read = []
    orig = ObjectStore.get_bytes
    monkeypatch.setattr(
        ObjectStore, "get_bytes", lambda self, uri, *a, **k: (read.append(str(uri)), orig(self, uri, *a, **k))[1]
    )
    res = build_index(_cfg(corpus))
    m = res["manifest"]
    by = m["rejects"]["by_reason"]
    assert by["bad_image"] == 2  # {"bytes": "abc"}, 12345
    assert by["unsafe_path"] == 2  # ../secret/hostname, /abs/secret/hostname
    assert by["unreadable_file"] == 3  # truncated .jsonl.gz, corrupt parquet, truncated tar
    assert by["bad_record"] == 2  # the JSON-array line, the webdataset sample with a bad .json member
    assert not any("secret" in u for u in read)  # the escaping paths were never opened
    counts = m["corpus"]["counts"]
    rejected = [json.loads(line) for line in (corpus / "out/indices/t" / m["version"] / "rejects.jsonl").open()]
    assert all(r["reason"] != "missing_id" for r in rejected)
    assert counts["documents"] > 7 + 1  # a.jsonl (id 0 too), good.parquet and what the gzip held before the damage
    assert counts["images"] == 5  # 1 (path), 6 (base64), 1.png, 6.png and 10.png (before the tar breaks)
    details = " ".join(r["detail"] for r in rejected)
    assert "b.jsonl.gz" in details and "bad.parquet" in details and "w-001.tar" in details
    assert "not valid base64" in details and "12345" in details and "leaves" in details


def test_id_zero_is_an_id(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps(_doc(0)) + "\n")
    cfg = validate_config(
        IndexBuildConfig,
        {
            "name": "z",
            "output": str(tmp_path / "o"),
            "runner": "sequential",
            "sources": [{"kind": "jsonl", "path": str(tmp_path / "d.jsonl")}],
            "image_encoder": {"kind": "none"},
            "cache_dir": str(tmp_path / "c"),
        },
    )
    m = build_index(cfg)["manifest"]
    assert m["corpus"]["counts"]["documents"] == 1 and m["rejects"]["total"] == 0


def test_image_roots_admit_absolute_paths_elsewhere(corpus):
    c = corpus / "corpus"
    (c / "x.jsonl").write_text(json.dumps(_doc(9, image=str(corpus / "secret" / "hostname"))) + "\n")
    src = {"kind": "jsonl", "path": str(c / "x.jsonl")}
    [doc] = read_source(SourceConfig(**src), ObjectStore(), "")[0]
    assert doc["image"]["_reject"] == "unsafe_path"
    [doc] = read_source(SourceConfig(**src, image_roots=[str(corpus / "secret")]), ObjectStore(), "")[0]
    assert doc["image"] == str(corpus / "secret" / "hostname")


def test_path_helpers(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    assert child_path(tmp_path / "root", "a/b.bin") == (tmp_path / "root" / "a" / "b.bin").resolve()
    for bad in ("../x", "a/../../x", "/etc/hostname", "link/x", "", "."):
        with pytest.raises(UnsafePathError):
            child_path(tmp_path / "root", bad)
    assert uri_under("s3://b/corpus", "img/a/../x.png") == "s3://b/corpus/img/x.png"
    for bad in ("../x", "img/../../x", "s3://other/x", "/abs"):
        with pytest.raises(UnsafePathError):
            uri_under("s3://b/corpus", bad)
    assert is_under("s3://b/corpus/x", "s3://b/corpus") and not is_under("s3://b/corpus2/x", "s3://b/corpus")
    assert not is_under("s3://c/corpus/x", "s3://b/corpus") and not is_under(str(tmp_path), "s3://b")

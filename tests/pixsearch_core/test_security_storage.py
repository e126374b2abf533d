"""Object keys that climb out of a cache directory, and what killed writes leave behind (a `.tmp-*` file from a
killed rename, an S3 multipart upload never completed): refused, and cleaned up by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pixsearch_core.storage import ObjectStore, UnsafePathError, join

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _dotdot_keys(s3_store, prefix="models/m"):
    bucket = s3_store.root[5:]
    s3_store.s3.put_object(Bucket=bucket, Key=f"{prefix}/config.json", Body=b"{}")
    s3_store.s3.put_object(Bucket=bucket, Key=f"{prefix}/../../../../../../../../tmp/escaped-{bucket}", Body=b"x")
    keys = [o["Key"] for o in s3_store.s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(".." in k for k in keys), keys  # the server keeps the key as written
    return f"/tmp/escaped-{bucket}"


def test_weights_download_refuses_a_key_with_dotdot(s3_store, tmp_path):
    from pixsearch_core.modeling.weights import materialize

    escaped = _dotdot_keys(s3_store)
    with pytest.raises(UnsafePathError, match="leaves"):
        materialize(f"{s3_store.root}/models/m", tmp_path / "cache", s3_store)
    assert not os.path.exists(escaped) and not list((tmp_path / "cache").rglob("*.json"))


def test_embedder_model_download_refuses_a_key_with_dotdot(s3_store, tmp_path):
    from indexing.embedders import fetch_model_dir

    escaped = _dotdot_keys(s3_store)
    with pytest.raises(UnsafePathError, match="leaves"):
        fetch_model_dir(f"{s3_store.root}/models/m", str(tmp_path / "cache"), s3_store.config)
    assert not os.path.exists(escaped)


def test_honest_prefix_downloads(s3_store, tmp_path):
    from pixsearch_core.modeling.weights import materialize

    s3_store.put_bytes(f"{s3_store.root}/w/sub/a.bin", b"a")
    out = materialize(f"{s3_store.root}/w", tmp_path / "cache", s3_store)
    assert (out / "sub" / "a.bin").read_bytes() == b"a"


# ---------------------------------------------------------------- item 10: killed writes
KILLED_WRITE = textwrap.dedent("""
    import os, signal, sys
    from indexing.manifest import write_manifest
    from pixsearch_core.storage import ObjectStore

    os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)   # killed between the write and the rename
    write_manifest(ObjectStore(), sys.argv[1], {"name": "t"})
""")


def test_killed_manifest_rename_leaves_a_tmp_file_that_the_next_build_removes(tmp_path):
    from indexing import build as build_mod

    version = tmp_path / "out" / "indices" / "t" / "v1"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITE, str(version)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [left] = list(version.glob(".tmp-manifest.json.*"))  # the fault: nothing deletes it
    assert not (version / "manifest.json").exists()
    fresh = version / ".tmp-CURRENT.inflight"  # another writer's temporary file, seconds old: kept
    fresh.write_bytes(b"x")
    os.utime(left, (left.stat().st_mtime - 7200,) * 2)
    assert build_mod.clean_interrupted(ObjectStore(), str(tmp_path / "out" / "indices" / "t")) == {
        "tmp_files": 1,
        "uploads": 0,
    }
    assert not left.exists() and fresh.exists()


def test_incomplete_multipart_upload_is_aborted_on_the_next_run(s3_store):
    from indexing import build as build_mod

    bucket = s3_store.root[5:]
    key = "out/indices/t/v1/emb/text-00000.npy"
    up = s3_store.s3.create_multipart_upload(Bucket=bucket, Key=key)  # the fault: a writer killed mid-upload
    s3_store.s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"x" * (5 << 20))
    s3_store.s3.create_multipart_upload(Bucket=bucket, Key="elsewhere/x")
    listed = lambda: {u["Key"] for u in s3_store.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert listed() == {key, "elsewhere/x"}
    index_uri = join(s3_store.root, "out/indices/t")
    century = 100 * 365 * 86400  # moto reports every upload as started in 2010: "younger than a century" is kept
    assert build_mod.clean_interrupted(s3_store, index_uri, older_than_s=century) == {"tmp_files": 0, "uploads": 0}
    assert build_mod.clean_interrupted(s3_store, index_uri, older_than_s=0) == {"tmp_files": 0, "uploads": 1}
    assert listed() == {"elsewhere/x"}  # only under the index's prefix
    from jobs import cli

    assert (
        cli.main(
            [
                "store",
                "clean",
                f"{s3_store.root}/elsewhere",
                "--older-than-s",
                "0",
                "--endpoint-url",
                s3_store.config.endpoint_url,
                "--region",
                "us-east-1",
            ]
        )
        == 0
    )
    assert listed() == set()


def test_build_index_cleans_its_index_prefix_first(tmp_path, monkeypatch):
    from indexing import build as build_mod
    from indexing.config import IndexBuildConfig

    seen = []
    monkeypatch.setattr(build_mod, "clean_interrupted", lambda store, uri, **k: seen.append(uri) or {})
    monkeypatch.setattr(build_mod, "fingerprint", lambda cfg, store: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(RuntimeError, match="stop"):
        build_mod.build_index(IndexBuildConfig(name="t", output=str(tmp_path / "o")))
    assert seen == [str(tmp_path / "o" / "indices" / "t")]


def test_cleaning_without_the_permission_is_a_warning_for_a_build(s3_store, monkeypatch, caplog):
    from botocore.exceptions import ClientError

    from indexing.manifest import clean_interrupted
    from pixsearch_core.storage import StorageError

    def denied(*a, **k):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListMultipartUploads")

    monkeypatch.setattr(s3_store.s3, "get_paginator", denied)
    with pytest.raises(StorageError, match="AccessDenied"):
        s3_store.clean_incomplete(s3_store.root)
    assert clean_interrupted(s3_store, s3_store.root) == {"tmp_files": 0, "uploads": 0}
    assert "could not clean interrupted writes" in caplog.text

"""The object-store contract, run against a directory, file:// and a real S3 server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from pixsearch_core.storage import StorageError, join


def test_put_get_roundtrip_and_sha(store):
    uri = join(store.root, "a/b/obj.bin")
    data = os.urandom(1000)
    assert store.put_bytes(uri, data) == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(uri) == data
    assert store.exists(uri) and store.size(uri) == 1000
    assert not store.exists(join(store.root, "a/b/missing"))


def test_ranged_reads(store):
    uri = join(store.root, "r.bin")
    data = bytes(range(256)) * 4
    store.put_bytes(uri, data)
    assert store.get_bytes(uri, 10, 19) == data[10:20]
    assert store.get_bytes(uri, start=1000) == data[1000:]
    with pytest.raises(ValueError, match="bad byte range"):
        store.get_bytes(uri, 5, 2)


def test_missing_object_is_file_not_found(store):
    with pytest.raises(FileNotFoundError, match="no object"):
        store.get_bytes(join(store.root, "nope"))


def test_large_file_multipart_roundtrip(store, tmp_path):
    # 12 MiB with a 5 MiB part size: three parts on S3.
    src = tmp_path / "big.bin"
    data = os.urandom(12 * 1024 * 1024 + 17)
    src.write_bytes(data)
    uri = join(store.root, "big/big.bin")
    assert store.put_file(uri, src) == hashlib.sha256(data).hexdigest()
    out = store.get_file(uri, tmp_path / "dl" / "big.bin")
    assert out.read_bytes() == data
    assert store.get_bytes(uri, 6 * 1024 * 1024, 6 * 1024 * 1024 + 99) == data[6 * 1024 * 1024 : 6 * 1024 * 1024 + 100]


def test_listing_is_recursive_sorted_and_paginates(store):
    keys = [f"dir/k{i:04d}" for i in range(1005)] + ["dir/sub/x", "other/y"]
    if store.root.startswith("s3://"):
        bucket = store.root[5:]
        for k in keys:  # direct puts: faster than the transfer manager for 1000 tiny objects
            store.s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    else:
        for k in keys[:20] + keys[-2:]:
            store.put_bytes(join(store.root, k), b"x")
        keys = keys[:20] + keys[-2:]
    listed = list(store.list(join(store.root, "dir")))
    want = sorted(join(store.root, k) for k in keys if k.startswith("dir/"))
    assert listed == want  # > 1000 objects on S3: needs the second page
    assert list(store.list(join(store.root, "missing"))) == []


def test_delete(store):
    uri = join(store.root, "d/x")
    store.put_bytes(uri, b"1")
    store.put_bytes(join(store.root, "d/y"), b"2")
    store.delete(uri)
    assert not store.exists(uri)
    store.delete(uri)  # idempotent
    assert store.delete_prefix(join(store.root, "d")) == 1
    assert list(store.list(join(store.root, "d"))) == []


class _Exploding(io.RawIOBase):
    """A stream that yields `n` bytes and then fails, like a crash half-way through a write."""

    def __init__(self, n: int):
        self.left = n

    def readable(self):
        return True

    def read(self, size=-1):
        if self.left <= 0:
            raise RuntimeError("injected failure half-way")
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        return b"z" * size


@pytest.mark.parametrize("nbytes", [1024, 11 * 1024 * 1024])  # a single PUT, and a multipart upload
def test_interrupted_write_leaves_no_visible_object(store, nbytes):
    uri = join(store.root, "atomic/obj")
    with pytest.raises((RuntimeError, StorageError)):
        store.put_stream(uri, _Exploding(nbytes))
    assert not store.exists(uri)
    assert list(store.list(join(store.root, "atomic"))) == []
    if store.root.startswith("s3://"):
        uploads = store.s3.list_multipart_uploads(Bucket=store.root[5:]).get("Uploads", [])
        assert uploads == [], "an interrupted multipart upload must be aborted"


def test_overwrite_is_whole(store):
    uri = join(store.root, "w")
    store.put_bytes(uri, b"old")
    with pytest.raises((RuntimeError, StorageError)):
        store.put_stream(uri, _Exploding(100))
    assert store.get_bytes(uri) == b"old"


def test_bad_uris():
    from pixsearch_core.storage import ObjectStore, local_path

    with pytest.raises(ValueError, match="allowed"):
        local_path("gs://bucket/x")
    with pytest.raises(ValueError, match="no bucket"):
        ObjectStore().get_bytes("s3:///key")

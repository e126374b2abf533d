"""Object storage: one small interface over plain paths, `file://` URIs and `s3://` (boto3).

    store = ObjectStore(StorageConfig(endpoint_url="http://127.0.0.1:9000"))
    sha = store.put_bytes("s3://bucket/indices/demo/v1/manifest.json", blob)   # appears whole or not at all
    store.get_bytes("s3://bucket/indices/demo/v1/shard-00000.faiss", start=0, end=1023)  # ranged read

Every write is write-then-publish: a local write goes to a hidden temporary file in the target directory and is
renamed into place; an S3 write is a single PUT or a multipart upload that only becomes visible at
CompleteMultipartUpload and is aborted on any error. So an interrupted write never leaves a visible object.
Every `put_*` returns the sha256 of exactly the bytes written (manifests record it).

Credentials for S3 come only from the standard AWS chain (environment, shared files, instance roles); the config
holds the endpoint, region and addressing style, never secrets.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import urlparse

from pydantic import Field

from pixsearch_core.config import Config

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_HASH_CHUNK = 8 << 20


class StorageConfig(Config):
    """How to reach object storage. Plain paths and file:// need none of it."""

    endpoint_url: str | None = Field(None, description="S3-compatible endpoint, e.g. http://127.0.0.1:9000; None = AWS")
    region: str | None = Field(None, description="S3 region; None = from the AWS chain")
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    multipart_threshold_mb: int = Field(64, ge=5, description="files larger than this are uploaded in parts")
    multipart_chunk_mb: int = Field(16, ge=5, description="part size (S3 requires >= 5 MiB except the last)")
    max_concurrency: int = Field(8, ge=1, le=64)
    max_attempts: int = Field(5, ge=1, le=20, description="botocore retry attempts (standard mode)")


class StorageError(OSError):
    """A failed storage operation; names the URI."""


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI or path with '/'."""
    out = uri.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def local_path(uri: str) -> Path:
    """A plain path or file:// URI as a Path."""
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    if "://" in uri:
        raise ValueError(f"not a local URI: {uri!r}; allowed: a plain path, file://..., or s3://...")
    return Path(uri)


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ValueError(f"S3 URI {uri!r} has no bucket; expected s3://bucket/key")
    return parsed.netloc, parsed.path.lstrip("/")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class _HashingReader(io.RawIOBase):
    """Wraps a binary stream and hashes what is read through it."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data

    def readinto(self, b) -> int:  # pragma: no cover - boto3 uses read()
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class ObjectStore:
    """Put/get/list/delete over local paths and s3:// with one set of calls; the URI's scheme picks the backend."""

    def __init__(self, config: StorageConfig | None = None):
        self.config = config or StorageConfig()
        self._s3 = None

    # ---------------------------------------------------------------- S3 plumbing
    @property
    def s3(self):
        if self._s3 is None:
            import boto3
            from botocore.config import Config as BotoConfig

            cfg = BotoConfig(
                s3={"addressing_style": self.config.addressing_style},
                retries={"max_attempts": self.config.max_attempts, "mode": "standard"},
            )
            self._s3 = boto3.session.Session().client(
                "s3", endpoint_url=self.config.endpoint_url, region_name=self.config.region, config=cfg)
        return self._s3

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        mb = 1 << 20
        return TransferConfig(multipart_threshold=self.config.multipart_threshold_mb * mb,
                              multipart_chunksize=self.config.multipart_chunk_mb * mb,
                              max_concurrency=self.config.max_concurrency, use_threads=True)

    def _s3_error(self, op: str, uri: str, err: Exception) -> StorageError:
        return StorageError(f"{op} {uri} failed: {err}")

    # ---------------------------------------------------------------- writes
    def put_stream(self, uri: str, stream: BinaryIO) -> str:
        """Write everything read from `stream` to `uri`, atomically; returns its sha256."""
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            reader = _HashingReader(stream)
            try:
                # s3transfer switches to multipart above the threshold and aborts the upload on failure.
                self.s3.upload_fileobj(reader, bucket, key, Config=self._transfer_config())
            except Exception as e:
                raise self._s3_error("put", uri, e) from e
            return reader.hash.hexdigest()
        target = local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{_TMP_PREFIX}{target.name}.{uuid.uuid4().hex}"
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return h.hexdigest()

    def put_bytes(self, uri: str, data: bytes) -> str:
        """Write `data` to `uri`, atomically; returns its sha256."""
        return self.put_stream(uri, io.BytesIO(data))

    def put_file(self, uri: str, path: str | Path) -> str:
        """Upload a local file to `uri` (multipart above the threshold), atomically; returns its sha256."""
        with open(path, "rb") as f:
            return self.put_stream(uri, f)

    # ---------------------------------------------------------------- reads
    def get_bytes(self, uri: str, start: int | None = None, end: int | None = None) -> bytes:
        """Read an object, or the inclusive byte range [start, end] of it."""
        if start is not None and start < 0 or (end is not None and start is not None and end < start):
            raise ValueError(f"bad byte range start={start} end={end}; need 0 <= start <= end")
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            kwargs = {}
            if start is not None or end is not None:
                kwargs["Range"] = f"bytes={start or 0}-{'' if end is None else end}"
            try:
                return self.s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                raise FileNotFoundError(f"no object at {uri}") from None
            except Exception as e:
                raise self._s3_error("get", uri, e) from e
        path = local_path(uri)
        if not path.is_file():
            raise FileNotFoundError(f"no object at {uri}")
        with open(path, "rb") as f:
            if start is None and end is None:
                return f.read()
            f.seek(start or 0)
            return f.read(-1 if end is None else end - (start or 0) + 1)

    def get_file(self, uri: str, path: str | Path) -> Path:
        """Download `uri` to a local file (parallel ranged GETs on S3), atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{uuid.uuid4().hex}"
        try:
            if is_s3(uri):
                if not self.exists(uri):
                    raise FileNotFoundError(f"no object at {uri}")
                bucket, key = _split_s3(uri)
                self.s3.download_file(bucket, key, str(tmp), Config=self._transfer_config())
            else:
                src = local_path(uri)
                if not src.is_file():
                    raise FileNotFoundError(f"no object at {uri}")
                shutil.copyfile(src, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def read_parquet(self, uri: str, columns: list[str] | None = None):
        """A parquet object as a pyarrow Table, read in memory.

        pre_buffer=False: pyarrow's read-ahead cache otherwise keeps futures over the Python bytes alive on its IO
        threads, and their release at interpreter exit (after Ray has installed its terminate handler) aborts the
        process (seen as exit -6 at the end of `pixsearch eval run`)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(self.get_bytes(uri)), columns=columns, pre_buffer=False)

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            try:
                self.s3.head_object(Bucket=bucket, Key=key)
                return True
            except self.s3.exceptions.ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise self._s3_error("head", uri, e) from e
        return local_path(uri).is_file()

    def size(self, uri: str) -> int:
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            try:
                return int(self.s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
            except self.s3.exceptions.ClientError as e:
                raise FileNotFoundError(f"no object at {uri}") from e
        path = local_path(uri)
        if not path.is_file():
            raise FileNotFoundError(f"no object at {uri}")
        return path.stat().st_size

    def list(self, prefix: str) -> Iterator[str]:
        """Every object under the directory `prefix`, recursively, as full URIs, sorted (S3 pages through)."""
        if is_s3(prefix):
            bucket, key = _split_s3(prefix)
            key = key.rstrip("/") + "/" if key else ""
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=key):
                for obj in page.get("Contents", []):
                    yield f"s3://{bucket}/{obj['Key']}"
            return
        root = local_path(prefix)
        if not root.is_dir():
            return
        base = prefix.rstrip("/")
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.startswith(_TMP_PREFIX):
                yield f"{base}/{p.relative_to(root).as_posix()}"

    def delete(self, uri: str) -> None:
        """Delete one object; deleting a missing object is not an error."""
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            try:
                self.s3.delete_object(Bucket=bucket, Key=key)
            except Exception as e:
                raise self._s3_error("delete", uri, e) from e
            return
        local_path(uri).unlink(missing_ok=True)

    def make_bucket(self, uri: str) -> None:
        """Create the bucket of an s3:// URI (an existing bucket of yours is fine)."""
        bucket, _ = _split_s3(uri)
        kwargs = {}
        if self.config.region and self.config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
        try:
            self.s3.create_bucket(Bucket=bucket, **kwargs)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        except Exception as e:
            raise self._s3_error("create bucket", uri, e) from e

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many."""
        n = 0
        for uri in list(self.list(prefix)):
            self.delete(uri)
            n += 1
        return n

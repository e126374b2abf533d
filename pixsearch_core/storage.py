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
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import urlparse

from pydantic import Field

from pixsearch_core.config import Config

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_HASH_CHUNK = 8 << 20
#: what a killed write leaves (a hidden temporary file, an S3 multipart upload) is removed once it is this old;
#: a write still in progress is younger
STALE_AFTER_S = 3600


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


class UnsafePathError(ValueError):
    """A path, key or reference that would leave the directory or prefix it has to stay in."""


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


def child_path(root: str | Path, rel: str) -> Path:
    """`root/rel` for a relative `rel` (an object key's tail, a file name from a record) that stays inside `root`
    once `..` and symlinks are resolved; anything else raises UnsafePathError naming both."""
    base = Path(root).expanduser().resolve()
    if not isinstance(rel, str) or not rel.strip("/.") or rel.startswith(("/", "\\")) or "\0" in rel:
        raise UnsafePathError(f"{rel!r} is not a relative path under {root}")
    out = (base / rel).resolve()
    if base not in out.parents:
        raise UnsafePathError(f"{rel!r} leaves {root} (resolves to {out}); only paths inside it are allowed")
    return out


def is_under(uri: str, root: str) -> bool:
    """Whether `uri` (a plain path, file:// or s3:// URI) lies inside the directory or prefix `root`."""
    if is_s3(uri) or is_s3(root):
        if not (is_s3(uri) and is_s3(root)):
            return False
        (b1, k1), (b2, k2) = _split_s3(uri), _split_s3(root)
        k1, k2 = posixpath.normpath("/" + k1), posixpath.normpath("/" + k2)
        return b1 == b2 and (k2 == "/" or k1.startswith(k2.rstrip("/") + "/"))
    path, base = local_path(uri).expanduser().resolve(), local_path(root).expanduser().resolve()
    return base in path.parents


def uri_under(base: str, ref: str) -> str:
    """A relative reference (`images/x.png`) resolved against the directory or prefix `base`; a reference that
    leaves it (`../../etc/hostname`, a symlink out) raises UnsafePathError."""
    if not isinstance(ref, str) or not ref or ref.startswith("/") or "://" in ref or "\0" in ref:
        raise UnsafePathError(f"{ref!r} is not a relative path under {base}")
    out = join(base, posixpath.normpath(ref))
    if not is_under(out, base):
        raise UnsafePathError(f"{ref!r} leaves {base}; only paths inside it are allowed")
    return out


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
                "s3", endpoint_url=self.config.endpoint_url, region_name=self.config.region, config=cfg
            )
        return self._s3

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        mb = 1 << 20
        return TransferConfig(
            multipart_threshold=self.config.multipart_threshold_mb * mb,
            multipart_chunksize=self.config.multipart_chunk_mb * mb,
            max_concurrency=self.config.max_concurrency,
            use_threads=True,
        )

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

    def put_if_absent(self, uri: str, data: bytes) -> bool:
        """Create `uri` with `data` only if no object is there: True if this call created it, False if one
        existed. Atomic against concurrent writers (S3 conditional PUT `If-None-Match: *`; locally a hard link,
        which fails when the name exists), so exactly one of several racing callers gets True (leases, locks)."""
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            try:
                self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except self.s3.exceptions.ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise self._s3_error("conditional put", uri, e) from e
        target = local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{_TMP_PREFIX}{target.name}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, target)  # fails if the target exists; readers never see a partly written object
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

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

    def clean_incomplete(
        self, prefix: str, older_than_s: float = STALE_AFTER_S, best_effort: bool = False
    ) -> dict[str, int]:
        """Remove what killed writes left under `prefix` and are older than `older_than_s`: hidden `.tmp-*` files
        of local writes (a process killed between write and rename) and S3 multipart uploads never completed or
        aborted (a process killed mid-upload; they are invisible but billed). Returns how many of each.
        best_effort: a failure (e.g. credentials without s3:ListBucketMultipartUploads) is logged as a warning and
        counts nothing, for callers whose real work should not stop on housekeeping."""
        try:
            return self._clean_incomplete(prefix, older_than_s)
        except (StorageError, OSError) as e:
            if not best_effort:
                raise
            log.warning(
                "could not clean interrupted writes under %s (%s); they stay until a later run, `pixsearch "
                "store clean` or a bucket lifecycle rule removes them",
                prefix,
                e,
            )
            return {"tmp_files": 0, "uploads": 0}

    def _clean_incomplete(self, prefix: str, older_than_s: float) -> dict[str, int]:
        cutoff = time.time() - older_than_s
        if not is_s3(prefix):
            root, n = local_path(prefix), 0
            for p in root.rglob(f"{_TMP_PREFIX}*") if root.is_dir() else ():
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink(missing_ok=True)
                    log.warning("removed %s, left by an interrupted write", p)
                    n += 1
            return {"tmp_files": n, "uploads": 0}
        bucket, key = _split_s3(prefix)
        key = key.rstrip("/") + "/" if key else ""
        n = 0
        try:
            for page in self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
                for up in page.get("Uploads", []):
                    if up["Initiated"] < datetime.fromtimestamp(cutoff, UTC):
                        self.s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
                        log.warning(
                            "aborted the incomplete multipart upload of s3://%s/%s (started %s)",
                            bucket,
                            up["Key"],
                            up["Initiated"],
                        )
                        n += 1
        except Exception as e:
            raise self._s3_error("clean incomplete uploads under", prefix, e) from e
        return {"tmp_files": 0, "uploads": n}

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

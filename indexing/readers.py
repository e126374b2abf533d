"""Corpus readers: JSONL / parquet records, MediaWiki XML dumps (streamed), webdataset image shards.

Every reader yields plain dicts, in a deterministic order (files sorted by name, records in file order):

- documents: ``{"id", "title", "text", "url", "image"?}`` where ``image`` is raw bytes, a path / URI (relative
  paths resolve against the SynthCRAG world root when the file lies in a world, else against the record's file:
  `pixsearch_core.synthcrag.paths.reference_base`), or ``{"bytes": <base64>}`` in JSONL;
- images: ``{"doc_id", "key", "bytes"}``.

Records are not trusted. A relative image path that climbs out of its file's directory, an absolute one outside
`image_roots`, an image field of the wrong type or bad base64 becomes ``{"_reject": reason, "_detail": ...}``
in place of the image (the document itself stays). A record that cannot be parsed, and a file that cannot be
read to its end (truncated gzip / bz2 / tar, corrupt parquet, broken XML), become ``{"_reject", "_detail"}``
records: what was read before the damage is kept, and the build quarantines the rest (`rejects.jsonl`).

`read_source(cfg, store)` dispatches on the source kind and returns ``(documents, images)`` iterators.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import fnmatch
import gzip
import io
import json
import logging
import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from typing import Any

from indexing.config import SourceConfig
from pixsearch_core.storage import ObjectStore, StorageError, UnsafePathError, is_s3, is_under, local_path, uri_under
from pixsearch_core.synthcrag.paths import reference_base

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")


def expand_paths(path: str, store: ObjectStore) -> list[str]:
    """A file, a directory (every file under it) or a glob on the last path part -> sorted URIs."""
    if any(c in path for c in "*?["):
        parent, _, pattern = path.rpartition("/")
        return sorted(u for u in store.list(parent) if fnmatch.fnmatch(u.rpartition("/")[2], pattern))
    if store.exists(path):
        return [path]
    found = sorted(store.list(path))
    if not found:
        raise FileNotFoundError(f"corpus source {path!r} matches no file (a file, a directory or a glob)")
    return found


class _RawBody(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so buffered / text / bz2 readers can sit on top of it."""

    def __init__(self, body):
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.body.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.body.close()
        super().close()


def open_uri(uri: str, store: ObjectStore) -> io.BufferedIOBase:
    """A binary stream over a local file or an S3 object (streamed GET); .bz2 / .gz are decompressed as they stream."""
    if is_s3(uri):
        from urllib.parse import urlparse

        parsed = urlparse(uri)
        raw = io.BufferedReader(
            _RawBody(store.s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]), 1 << 20
        )
    else:
        raw = open(local_path(uri), "rb")
    if uri.endswith(".bz2"):
        return bz2.BZ2File(raw)
    if uri.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    return raw


class BadImageRef(ValueError):
    """A record's image field that is not bytes, {"bytes": base64} or a path / URI inside the allowed roots."""


def _resolve_image(value: Any, base: str, roots: list[str] = ()) -> Any:
    """Normalise a record's image field: bytes stay bytes, {"bytes": b64} is decoded, a path is checked against
    its roots (relative: `base`, the record file's world root or directory; absolute: `roots`, default `base`)."""
    if value is None or value == "" or isinstance(value, (bytes, bytearray)):
        return value or None
    if isinstance(value, dict) and "bytes" in value:
        raw = value["bytes"]
        if isinstance(raw, (bytes, bytearray)):
            return bytes(raw)
        if not isinstance(raw, str):
            raise BadImageRef(f"image.bytes is {type(raw).__name__}; expected base64 text")
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error as e:
            raise BadImageRef(f"image.bytes is not valid base64 ({e}): {raw[:40]!r}") from None
    if not isinstance(value, str):
        raise BadImageRef(
            f"image {value!r:.80} is {type(value).__name__}; expected bytes, {{'bytes': base64}} or a path / URI"
        )
    if "://" not in value and not value.startswith("/"):
        return uri_under(base, value)
    allowed = list(roots) or [base]
    try:
        inside = any(is_under(value, r) for r in allowed)
    except ValueError as e:  # a scheme that is neither a path, file:// nor s3://
        raise BadImageRef(f"image {value!r:.200}: {e}") from None
    if not inside:
        raise UnsafePathError(f"image {value!r:.200} is outside the allowed roots {allowed} (source image_roots)")
    return value


def _with_image(rec: dict, uri: str, base: str, roots: list[str]) -> dict:
    try:
        rec["image"] = _resolve_image(rec.get("image"), base, roots)
    except UnsafePathError as e:
        rec["image"] = {"_reject": "unsafe_path", "_detail": f"{uri}: record {rec.get('id')!r}: {e}"}
    except BadImageRef as e:
        rec["image"] = {"_reject": "bad_image", "_detail": f"{uri}: record {rec.get('id')!r}: {e}"}
    return rec


def read_jsonl(uri: str, store: ObjectStore, roots: list[str] = ()) -> Iterator[dict]:
    """Records of a JSONL file; lines end at "\n" only (U+2028 and friends are text inside a JSON string)."""
    base = reference_base(store, uri)
    with open_uri(uri, store) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                yield {"_reject": "bad_record", "_detail": f"{uri}:{lineno}: {e}"}
                continue
            if not isinstance(rec, dict):
                yield {"_reject": "bad_record", "_detail": f"{uri}:{lineno}: not a JSON object"}
                continue
            yield _with_image(rec, uri, base, roots)


def read_parquet(uri: str, store: ObjectStore, roots: list[str] = ()) -> Iterator[dict]:
    import pyarrow.parquet as pq

    src = local_path(uri) if not is_s3(uri) else io.BytesIO(store.get_bytes(uri))
    pf = pq.ParquetFile(src)
    base = reference_base(store, uri)
    for batch in pf.iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            yield _with_image(rec, uri, base, roots)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def strip_markup(wikitext: str) -> str:
    """Wikitext -> plain text (indexing/wikitext.py: mwparserfromhell; tables kept as cell text)."""
    from indexing.wikitext import plain_text

    return plain_text(wikitext)


def read_mediawiki(uri: str, store: ObjectStore, url_base: str) -> Iterator[dict]:
    """Stream <page>s of a MediaWiki export (main namespace, no redirects) without holding the dump in memory."""
    with open_uri(uri, store) as f:
        for _, elem in ET.iterparse(f, events=("end",)):
            if _local(elem.tag) != "page":
                continue
            fields = {_local(c.tag): c for c in elem}
            ns = fields.get("ns")
            if (ns is not None and (ns.text or "0").strip() != "0") or "redirect" in fields:
                elem.clear()
                continue
            title = (fields["title"].text or "").strip() if "title" in fields else ""
            rev = fields.get("revision")
            raw = ""
            if rev is not None:
                text_el = next((c for c in rev if _local(c.tag) == "text"), None)
                raw = (text_el.text or "") if text_el is not None else ""
            page_id = (fields["id"].text or "").strip() if "id" in fields else ""
            elem.clear()
            yield {"id": page_id, "title": title, "text": strip_markup(raw), "url": url_base + title.replace(" ", "_")}


def _wds_sample(uri: str, key: str, sample: dict[str, bytes]) -> dict:
    try:
        meta = json.loads(sample["json"]) if "json" in sample else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return {"_reject": "bad_record", "_detail": f"{uri}: sample {key!r}: .json member: {e}"}
    if not isinstance(meta, dict):
        return {"_reject": "bad_record", "_detail": f"{uri}: sample {key!r}: .json member is not an object"}
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None:
        return {"_reject": "no_image", "_detail": f"{uri}: sample {key!r} has no image ({sorted(sample)})"}
    return {"doc_id": str(meta.get("doc_id", key)), "key": f"{key}.{ext}", "bytes": sample[ext]}


def read_webdataset(uri: str, store: ObjectStore) -> Iterator[dict]:
    """Images from a webdataset tar shard, streamed: consecutive members sharing a key form a sample; the key is the
    document id (or a .json member gives "doc_id")."""
    key, sample = None, {}
    with open_uri(uri, store) as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rpartition("/")[2]
            k, _, ext = name.partition(".")
            if k != key and sample:
                yield _wds_sample(uri, key, sample)
                sample = {}
            key = k
            sample[ext.lower()] = tar.extractfile(member).read()
    if sample:
        yield _wds_sample(uri, key, sample)


def read_source(cfg: SourceConfig, store: ObjectStore, cache_dir: str) -> tuple[Iterator[dict], Iterator[dict]]:
    """(documents, images) of one source, each a lazy iterator in deterministic order."""
    if cfg.kind == "demo":
        from indexing.demo_corpus import demo_sources

        docs, imgs = iter(()), iter(())
        for sub in demo_sources(cache_dir):
            if sub.kind == "mediawiki" and cfg.max_records:  # max_records limits the demo's articles
                sub = sub.model_copy(update={"max_records": cfg.max_records})
            d, i = read_source(sub, store, cache_dir)
            docs, imgs = _chain(docs, d), _chain(imgs, i)
        return docs, imgs
    uris = expand_paths(cfg.path, store)
    limit = cfg.max_records

    def gen(reader) -> Iterator[dict]:
        n = 0
        for uri in uris:
            for rec in _whole_file(uri, reader):
                yield rec
                n += 1
                if limit is not None and n >= limit:
                    return

    roots = cfg.image_roots
    readers = {
        "jsonl": lambda u: read_jsonl(u, store, roots),
        "parquet": lambda u: read_parquet(u, store, roots),
        "mediawiki": lambda u: read_mediawiki(u, store, cfg.url_base),
    }
    if cfg.kind == "webdataset":
        return iter(()), gen(lambda u: read_webdataset(u, store))
    return gen(readers[cfg.kind]), iter(())


#: what a damaged file raises part-way (truncated gzip/bz2/tar, corrupt parquet, broken XML, bad UTF-8)
_DAMAGED = (EOFError, OSError, ValueError, zlib.error, tarfile.TarError, ET.ParseError)


def _whole_file(uri: str, reader) -> Iterator[dict]:
    """The file's records; if it is damaged part-way, those read before and one `unreadable_file` reject.
    Storage failures (StorageError) are not damage and still fail the build."""
    try:
        yield from reader(uri)
    except StorageError:
        raise
    except _DAMAGED as e:
        log.warning("%s: unreadable from here on (%s: %s); quarantined", uri, type(e).__name__, e)
        yield {"_reject": "unreadable_file", "_detail": f"{uri}: {type(e).__name__}: {e}"}


def _chain(a: Iterator[dict], b: Iterator[dict]) -> Iterator[dict]:
    yield from a
    yield from b

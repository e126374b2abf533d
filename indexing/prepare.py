"""Driver side of a build: read every source, quarantine bad records, chunk, number, and stage the shards.

Documents are read first (validated, de-duplicated, split into passages and numbered in read order), then
images (linked to a known document, de-duplicated). Each full shard of passages or images is written as a parquet
file under `staging/` as soon as it fills, so the driver holds one shard at a time, plus a small per-document
record (title, url, lead text) that image shards copy into their document store.
Every rejected record goes to `rejects/prepare.jsonl` with its reason. Each staged row carries the content hash of
what its encoder will see (indexing/embedding_store.py), so a rebuild can reuse stored vectors.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from indexing.config import IndexBuildConfig
from indexing.embedding_store import HASH_BYTES, content_hash
from indexing.passages import embed_text, split_passages
from indexing.readers import read_source
from indexing.shard_plan import ShardPlan, ShardSpec
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

LEAD_CHARS = 600  # document text kept with each image (what an image hit shows)


def write_parquet(store: ObjectStore, uri: str, rows: list[dict], schema: pa.Schema) -> str:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, compression="zstd")
    return store.put_bytes(uri, buf.getvalue())


TEXT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("doc_id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("passage", pa.int32()),
        ("hash", pa.binary(HASH_BYTES)),
    ]
)
IMAGE_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("doc_id", pa.string()),
        ("key", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("bytes", pa.binary()),
        ("hash", pa.binary(HASH_BYTES)),
    ]
)


class _Stager:
    """Numbers rows of one kind and writes a staging shard every `per_shard` rows."""

    def __init__(self, kind: str, per_shard: int, schema: pa.Schema, store: ObjectStore, root: str):
        self.kind, self.per_shard, self.schema, self.store, self.root = kind, per_shard, schema, store, root
        self.rows: list[dict] = []
        self.next_id = 0
        self.shards: list[ShardSpec] = []

    def add(self, row: dict) -> None:
        row["id"] = self.next_id
        self.next_id += 1
        self.rows.append(row)
        if len(self.rows) >= self.per_shard:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        spec = ShardSpec(self.kind, len(self.shards), self.rows[0]["id"], self.rows[-1]["id"] + 1)
        spec.staging_sha256 = write_parquet(self.store, join(self.root, spec.staging), self.rows, self.schema)
        log.info("staged %s: ids [%d, %d)", spec.name, spec.id_start, spec.id_end)
        self.shards.append(spec)
        self.rows = []


class _Rejects:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, reason: str, record_id: str, detail: str = "") -> None:
        self.rows.append({"reason": reason, "id": record_id, "detail": detail[:500]})

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r["reason"] for r in self.rows).items()))


def _check_doc(rec: dict, seen: set[str], cfg: IndexBuildConfig) -> str | None:
    """The reject reason for a document record, or None if it is good."""
    if "_reject" in rec:
        return rec["_reject"]
    raw = rec.get("id")
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, (str, int))):
        return "bad_id"
    doc_id = "" if raw is None else str(raw).strip()  # 0 is an id
    if not doc_id:
        return "missing_id"
    if doc_id in seen:
        return "duplicate_id"
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        return "empty_text"
    if len(text) > cfg.passages.max_doc_chars:
        return "huge_text"
    return None


def _load_image(ref, store: ObjectStore) -> bytes:
    if isinstance(ref, (bytes, bytearray)):
        return bytes(ref)
    return store.get_bytes(ref)


def prepare(cfg: IndexBuildConfig, store: ObjectStore, root: str) -> tuple[ShardPlan, list[dict]]:
    """Stage every shard under `root` and return the plan and the driver's rejects."""
    cache = cfg.cache_dir
    sources = [read_source(s, store, cache) for s in cfg.sources]
    text = _Stager("text", cfg.shards.passages_per_shard, TEXT_SCHEMA, store, root)
    images = _Stager("image", cfg.shards.images_per_shard, IMAGE_SCHEMA, store, root)
    rejects = _Rejects()
    docs: dict[str, tuple[str, str, str]] = {}  # doc_id -> (title, url, lead text)
    inline_images: list[dict] = []
    n_inputs = 0
    for doc_iter, _ in sources:
        for rec in doc_iter:
            n_inputs += 1
            reason = _check_doc(rec, docs.keys(), cfg)
            if reason:
                rejects.add(reason, str(rec.get("id", "")), rec.get("_detail", ""))
                continue
            doc_id, title, url = str(rec["id"]).strip(), str(rec.get("title") or ""), str(rec.get("url") or "")
            body = rec["text"]
            docs[doc_id] = (title, url, body[:LEAD_CHARS])
            for i, passage in enumerate(split_passages(body, cfg.passages)):
                text.add(
                    {
                        "doc_id": doc_id,
                        "title": title,
                        "text": passage,
                        "url": url,
                        "passage": i,
                        "hash": content_hash(embed_text(title, passage, cfg.passages)),
                    }
                )
            image = rec.get("image")
            if isinstance(image, dict) and "_reject" in image:  # a bad image field: the text stays indexed
                if cfg.image_encoder.kind != "none":
                    inline_images.append({**image, "doc_id": doc_id})
            elif image is not None:
                inline_images.append({"doc_id": doc_id, "key": f"{doc_id}#image", "ref": image})
    text.flush()
    if cfg.image_encoder.kind != "none":
        n_inputs += _stage_images(_all_images(inline_images, sources), docs, images, rejects, store)
        images.flush()
    counts = {
        "inputs": n_inputs,
        "documents": len(docs),
        "passages": text.next_id,
        "images": images.next_id,
        "rejects_prepare": len(rejects.rows),
    }
    return ShardPlan(text.shards + images.shards, counts), rejects.rows


def _all_images(inline: list[dict], sources) -> Iterator[dict]:
    yield from inline
    for _, img_iter in sources:
        for rec in img_iter:
            yield rec if "ref" in rec or "_reject" in rec else {**rec, "ref": rec["bytes"]}


def _stage_images(recs: Iterator[dict], docs: dict, stager: _Stager, rejects: _Rejects, store: ObjectStore) -> int:
    seen: set[str] = set()
    n = 0
    for rec in recs:
        n += 1
        if "_reject" in rec:
            rejects.add(rec["_reject"], rec.get("doc_id", ""), rec.get("_detail", ""))
            continue
        key, doc_id = rec["key"], rec["doc_id"]
        if key in seen:
            rejects.add("duplicate_id", key)
            continue
        if doc_id not in docs:
            rejects.add("missing_document", key, f"image {key!r} links to unknown document {doc_id!r}")
            continue
        try:
            data = _load_image(rec["ref"], store)
        except (OSError, ValueError) as e:
            rejects.add("unreadable_image", key, str(e))
            continue
        seen.add(key)
        title, url, lead = docs[doc_id]
        stager.add(
            {
                "doc_id": doc_id,
                "key": key,
                "title": title,
                "text": lead,
                "url": url,
                "bytes": data,
                "hash": content_hash(data),
            }
        )
    return n


def rejects_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()

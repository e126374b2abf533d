"""Embeddings as an artifact: `pixsearch index embed` writes them; `pixsearch index build` can start from them.

    <out>/<text|image>/part-00000.parquet    id, doc_id, title, text, url, passage | key, vector (float32[dim])
    <out>/<text|image>/embeddings.json       modality, encoder spec, dim, count, parts with sha256

A build whose sources are all `kind: embeddings` skips reading and embedding: every part becomes one shard
(`modality` says which index), so FAISS settings can change without re-embedding. Parts may be parquet files with
a `vector` (or `embedding`) list column, or `<stem>.npy` (n, dim) float32 arrays each with a `<stem>.parquet` of
metadata rows, as clip-retrieval writes them. Row fields: `doc_id` (else a string `id`) is required; `title`,
`text`, `url`, `passage` / `key` are optional. An integer `id` column gives the global ids (increasing across the
parts, in name order), else rows are numbered in order. Rows without a document id or with a non-finite vector are
quarantined (rejects.jsonl). The encoder recorded in `embeddings.json` is what the searcher loads to embed
queries; without that file the index records encoder kind "external" and searching needs `encoders=` given.
"""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexing.embedding_store import vectors_of
from indexing.manifest import object_entry
from indexing.readers import expand_paths
from indexing.shard_plan import ShardPlan, ShardSpec
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

VECTOR_COLUMNS = ("vector", "embedding")
META = "embeddings.json"


def from_embeddings(cfg) -> bool:
    """True when every source is `kind: embeddings`; a mix with raw sources is an error."""
    kinds = {s.kind for s in cfg.sources}
    if "embeddings" in kinds and kinds != {"embeddings"}:
        raise ValueError(
            f"sources mix kind 'embeddings' with {sorted(kinds - {'embeddings'})}; a build starts "
            "either from embeddings or from raw sources"
        )
    return kinds == {"embeddings"}


def _parts(path: str, store: ObjectStore) -> list[tuple[str, str | None]]:
    """(metadata parquet URI, npy URI or None) per part, in name order."""
    uris = [u for u in expand_paths(path, store) if u.endswith((".parquet", ".npy"))]
    npys = {u[:-4] for u in uris if u.endswith(".npy")}
    out = []
    for u in uris:
        if u.endswith(".npy"):
            if not store.exists(u[:-4] + ".parquet"):
                raise ValueError(f"{u}: an .npy part needs its metadata {u[:-4]}.parquet (doc_id, title, text, url)")
            out.append((u[:-4] + ".parquet", u))
        elif u[:-8] not in npys:
            out.append((u, None))
    if not out:
        raise FileNotFoundError(f"embeddings source {path!r} holds no .parquet or .npy parts")
    return out


def _read_part(meta_uri: str, npy_uri: str | None, store: ObjectStore) -> tuple[pa.Table, np.ndarray]:
    table = pq.read_table(io.BytesIO(store.get_bytes(meta_uri)))
    if npy_uri:
        vectors = np.load(io.BytesIO(store.get_bytes(npy_uri)), allow_pickle=False).astype(np.float32, copy=False)
    else:
        col = next((c for c in VECTOR_COLUMNS if c in table.column_names), None)
        if col is None:
            raise ValueError(
                f"{meta_uri}: no vector column; expected one of {VECTOR_COLUMNS} "
                f"(or a {meta_uri[:-8]}.npy beside it); columns: {table.column_names}"
            )
        vectors, table = vectors_of(table, col), table.drop_columns([col])
    if vectors.ndim != 2 or len(vectors) != len(table):
        raise ValueError(f"{npy_uri or meta_uri}: {vectors.shape} vectors for {len(table)} metadata rows")
    return table, vectors


def _doc_rows(table: pa.Table, where: str) -> list[dict]:
    names = table.column_names
    if "doc_id" not in names and not ("id" in names and pa.types.is_string(table.schema.field("id").type)):
        raise ValueError(f"{where}: needs a doc_id column (or a string id); columns: {names}")
    return table.to_pylist()


def _docstore(kind: str, rows: list[dict], ids: list[int]) -> bytes:
    out = []
    for gid, r in zip(ids, rows):
        doc_id = str(r.get("doc_id") if r.get("doc_id") is not None else r.get("id"))
        row = {
            "id": gid,
            "doc_id": doc_id,
            "title": str(r.get("title") or ""),
            "text": str(r.get("text") or ""),
            "url": str(r.get("url") or ""),
        }
        row.update({"passage": int(r.get("passage") or 0)} if kind == "text" else {"key": str(r.get("key") or doc_id)})
        out.append(row)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(out), buf, compression="zstd", row_group_size=4096)
    return buf.getvalue()


def _encoder_spec(path: str, store: ObjectStore, dim: int) -> dict:
    meta_uri = join(path.rstrip("/"), META)
    if store.exists(meta_uri):
        spec = json.loads(store.get_bytes(meta_uri))["encoder"]
        if spec.get("dim") != dim:
            raise ValueError(f"{meta_uri}: encoder dim {spec.get('dim')} but the vectors have {dim}")
        return spec
    return {"kind": "external", "model": path, "dim": dim}


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _load_part(store, root, spec: ShardSpec, table, vectors, next_id: int, encoder: dict | None, where: str):
    """Write one part's shard objects; returns (result like an embed task's, rejects, next id)."""
    rows = _doc_rows(table, where)
    has_ids = "id" in table.column_names and pa.types.is_integer(table.schema.field("id").type)
    ids = [int(r["id"]) for r in rows] if has_ids else list(range(next_id, next_id + len(rows)))
    if ids and (ids[0] < next_id or np.any(np.diff(ids) <= 0)):
        raise ValueError(f"{where}: ids must increase across the parts (in name order); got {ids[:5]}...")
    rejects, keep = [], []
    for i, r in enumerate(rows):
        if r.get("doc_id") is None and not isinstance(r.get("id"), str):
            rejects.append({"reason": "missing_id", "id": str(ids[i]), "detail": where})
        elif not np.all(np.isfinite(vectors[i])):
            rejects.append({"reason": "bad_vector", "id": str(ids[i]), "detail": f"{where}: non-finite values"})
        else:
            keep.append(i)
    kept_ids = [ids[i] for i in keep]
    spec.id_start, spec.id_end = (ids[0], ids[-1] + 1) if ids else (next_id, next_id)
    emb, docs = _npy(np.ascontiguousarray(vectors[keep])), _docstore(spec.kind, [rows[i] for i in keep], kept_ids)
    res = {
        "shard": spec.name,
        "count": len(keep),
        "encoder": encoder,
        "seconds": 0.0,
        "rejects": rejects,
        "embedded": 0,
        "reused": len(keep),
        "embeddings": object_entry(spec.embeddings, store.put_bytes(join(root, spec.embeddings), emb), len(emb)),
        "docstore": object_entry(spec.docstore, store.put_bytes(join(root, spec.docstore), docs), len(docs)),
    }
    return res, rejects, spec.id_end


def load_embeddings(cfg, store: ObjectStore, root: str):
    """The build's first steps for embedding sources: -> (plan, rejects, embedded, reuse counts, seconds)."""
    import time

    t0 = time.perf_counter()
    shards, embedded, rejects, doc_ids, counts = [], {}, [], set(), {"text": 0, "image": 0}
    next_id, dims = {"text": 0, "image": 0}, {}
    for src in cfg.sources:
        kind = src.modality
        for meta_uri, npy_uri in _parts(src.path, store):
            table, vectors = _read_part(meta_uri, npy_uri, store)
            encoder = _encoder_spec(src.path, store, vectors.shape[1])
            spec = ShardSpec(kind, sum(s.kind == kind for s in shards), 0, 0)
            res, rej, next_id[kind] = _load_part(
                store, root, spec, table, vectors, next_id[kind], encoder, npy_uri or meta_uri
            )
            if dims.setdefault(kind, vectors.shape[1]) != vectors.shape[1]:
                raise ValueError(
                    f"{npy_uri or meta_uri}: dim {vectors.shape[1]} differs from the earlier {kind} parts' {dims[kind]}"
                )
            shards.append(spec)
            embedded[spec.name], counts[kind] = res, counts[kind] + len(table)
            rejects += rej
            doc_ids.update(table.column("doc_id").to_pylist() if "doc_id" in table.column_names else [])
    plan = ShardPlan(
        shards,
        {
            "inputs": counts["text"] + counts["image"],
            "documents": len(doc_ids),
            "passages": counts["text"],
            "images": counts["image"],
            "rejects_prepare": 0,
        },
    )
    reuse = {
        k: {"embedded": 0, "reused": sum(embedded[s.name]["count"] for s in plan.of_kind(k)), "source": "embeddings"}
        for k in ("text", "image")
        if plan.of_kind(k)
    }
    return plan, rejects, embedded, reuse, time.perf_counter() - t0


def export_embeddings(store: ObjectStore, root: str, plan: ShardPlan, embedded: dict, out: str, source: dict) -> dict:
    """Write each shard's rows with their vectors as `<out>/<kind>/part-NNNNN.parquet` + embeddings.json."""
    summary = {}
    for kind in ("text", "image"):
        parts = []
        for s in plan.of_kind(kind):
            e = embedded[s.name]
            docs = pq.read_table(io.BytesIO(store.get_bytes(join(root, e["docstore"]["uri"]))))
            vecs = np.load(io.BytesIO(store.get_bytes(join(root, e["embeddings"]["uri"]))), allow_pickle=False)
            flat = pa.array(np.ascontiguousarray(vecs, np.float32).ravel(), pa.float32())
            table = docs.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1]))
            buf = io.BytesIO()
            pq.write_table(table, buf, compression="zstd")
            rel = f"part-{s.index:05d}.parquet"
            parts.append(
                {"uri": rel, "sha256": store.put_bytes(join(out, kind, rel), buf.getvalue()), "count": len(table)}
            )
        if parts:
            enc = embedded[plan.of_kind(kind)[0].name]["encoder"]
            meta = {
                "modality": kind,
                "encoder": enc,
                "dim": enc["dim"],
                "count": sum(p["count"] for p in parts),
                "parts": parts,
                "source": source,
            }
            store.put_bytes(join(out, kind, META), json.dumps(meta, indent=1).encode())
            summary[kind] = {"uri": join(out, kind), "count": meta["count"], "parts": len(parts)}
    return summary

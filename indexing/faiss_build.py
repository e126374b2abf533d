"""FAISS: pick the index family from the vector count and a memory budget, train on a sample, add per shard.

The choice follows autofaiss: exact search while it is small and fits, IVF over full vectors while those fit
the budget, then OPQ + IVF + PQ with as many PQ bytes per vector as the budget allows. Every shard of a kind is
a copy of the same trained (empty) index with its own vectors added under their global ids, so shards can be
searched separately and the hits merged, or merged into one index with `merge`.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from indexing.config import FaissConfig

log = logging.getLogger(__name__)

PQ_BYTES = (64, 48, 32, 24, 16, 12, 8, 4)


def _nlist(n: int) -> int:
    """About 4 sqrt(n) lists (a power of two), keeping >= 39 training points per list."""
    target = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
    return int(max(1, min(target, n // 39)))


def choose_factory(n: int, dim: int, cfg: FaissConfig) -> str:
    """The FAISS factory string for `n` vectors of `dim` float32 under `cfg.memory_budget_mb`."""
    if cfg.factory:
        return cfg.factory
    budget = cfg.memory_budget_mb * 2**20
    if n <= cfg.exact_max_vectors and n * dim * 4 <= budget:
        return "IDMap,Flat"
    nlist = _nlist(n)
    if n * (dim * 4 + 8) <= budget:
        return f"IVF{nlist},Flat"
    for m in PQ_BYTES:  # the most PQ bytes per vector that fit; OPQ rotates to a multiple of m dims
        if m <= dim and n * (m + 8) <= budget:
            d_out = (min(dim, 4 * m) // m) * m
            return f"OPQ{m}_{d_out},IVF{nlist},PQ{m}x8"
    raise ValueError(
        f"{n} vectors cannot fit memory_budget_mb={cfg.memory_budget_mb} even at 4 bytes per vector; "
        f"raise faiss.memory_budget_mb"
    )


def default_nprobe(factory: str, cfg: FaissConfig) -> int | None:
    if "IVF" not in factory:
        return None
    if cfg.nprobe:
        return cfg.nprobe
    nlist = int(factory.split("IVF")[1].split(",")[0])
    return max(1, min(nlist, nlist // 16 if nlist >= 256 else nlist // 4 or 1))


def new_index(factory: str, dim: int):
    import faiss

    return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)


def train(factory: str, sample: np.ndarray, seed: int = 0):
    """An empty trained index (exact indexes need no training)."""
    import faiss

    index = new_index(factory, sample.shape[1])
    if not index.is_trained:
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.cp.seed = seed
        log.info("training %s on %d vectors", factory, len(sample))
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def serialize(index) -> bytes:
    import faiss

    return faiss.serialize_index(index).tobytes()


def deserialize(blob: bytes):
    import faiss

    return faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))


def add_shard(trained_blob: bytes, vectors: np.ndarray, ids: np.ndarray) -> bytes:
    """A copy of the trained index with `vectors` added under their global `ids`; returns it serialized."""
    index = deserialize(trained_blob)
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return serialize(index)


def merge(blobs: list[bytes]):
    """One index holding every shard's vectors (shards of one trained index: Flat with ids, IVF, IVF-PQ)."""
    if not blobs:
        raise ValueError("merge needs at least one shard")
    index = deserialize(blobs[0])
    for blob in blobs[1:]:
        index.merge_from(deserialize(blob), 0)  # ids are global already: no shift
    return index


def set_nprobe(index, nprobe: int | None) -> None:
    import faiss

    if nprobe:
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.nprobe = nprobe


def sample_rows(n: int, k: int, seed: int) -> np.ndarray:
    """Sorted positions of a deterministic uniform sample of min(n, k) of n rows."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def bytes_per_vector(factory: str, dim: int) -> float:
    """Storage per vector of the codes plus the 8-byte id (excluding the fixed training overhead)."""
    if "PQ" in factory:
        return int(factory.rsplit("PQ", 1)[1].split("x")[0]) + 8
    return dim * 4 + 8

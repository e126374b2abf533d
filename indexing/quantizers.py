"""Reuse a trained FAISS index (coarse quantizer, OPQ rotation, PQ codebooks) across rebuilds when the data fits it.

    <embedding store>/<encoder key>/quantizers/<factory digest>.faiss   the trained, empty index
    <embedding store>/<encoder key>/quantizers/<factory digest>.json    factory, training error, sample size

The drift test: the mean quantization error of the new build's training sample (squared distance of each vector,
after the index's pre-transform such as OPQ, to its nearest coarse IVF centroid) against the error recorded on the
training sample when the quantizer was trained. Within `faiss.drift_tolerance` (a relative increase, 0.10 = 10%)
the stored quantizer is reused, else the index is retrained and stored for the next build. A factory change (the
vector count moved the IVF list count, a new budget, a forced factory) always retrains, since the store is keyed by
factory. Indexes without training (Flat) have nothing to reuse.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from indexing import faiss_build
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)


def quantization_error(index, x: np.ndarray) -> float:
    """Mean squared L2 distance of `x` (after the pre-transform chain) to the nearest coarse centroid."""
    import faiss

    x = np.ascontiguousarray(x, np.float32)
    top = faiss.downcast_index(index)
    if isinstance(top, faiss.IndexPreTransform):
        for i in range(top.chain.size()):
            x = top.chain.at(i).apply(x)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        raise ValueError(f"quantization_error needs an IVF index, got {type(top).__name__}")
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    flat = faiss.IndexFlatL2(centroids.shape[1])
    flat.add(centroids)
    dist, _ = flat.search(x, 1)
    return float(dist.mean())


def _paths(store_uri: str, factory: str) -> tuple[str, str]:
    key = hashlib.sha256(factory.encode()).hexdigest()[:16]
    return join(store_uri, f"quantizers/{key}.faiss"), join(store_uri, f"quantizers/{key}.json")


def train_or_reuse(
    store: ObjectStore, store_uri: str | None, factory: str, sample: np.ndarray, tolerance: float, seed: int
) -> tuple[bytes, dict]:
    """(serialized trained index, what happened) for `factory`; `store_uri` None = never reuse or store."""
    blob_uri, meta_uri = _paths(store_uri, factory) if store_uri else (None, None)
    if meta_uri and store.exists(meta_uri):
        meta = json.loads(store.get_bytes(meta_uri))
        blob = store.get_bytes(blob_uri)
        if hashlib.sha256(blob).hexdigest() == meta["sha256"] and meta["factory"] == factory:
            error = quantization_error(faiss_build.deserialize(blob), sample)
            drift = error / max(meta["train_error"], 1e-12) - 1.0
            info = {
                "factory": factory,
                "sample": len(sample),
                "error": round(error, 6),
                "train_error": meta["train_error"],
                "drift": round(drift, 6),
                "tolerance": tolerance,
                "trained_at": meta["trained_at"],
            }
            if drift <= tolerance:
                log.info(
                    "reusing the trained %s: quantization error %.4g vs %.4g at training (drift %+.1f%% <= %.0f%%)",
                    factory,
                    error,
                    meta["train_error"],
                    100 * drift,
                    100 * tolerance,
                )
                return blob, {"quantizer": "reused", **info}
            log.info("retraining %s: drift %+.1f%% > %.0f%%", factory, 100 * drift, 100 * tolerance)
            return _train(store, blob_uri, meta_uri, factory, sample, seed, {"previous": info})
        log.warning("%s: stored quantizer does not verify; retraining", blob_uri)
    return _train(store, blob_uri, meta_uri, factory, sample, seed, {})


def _train(store, blob_uri, meta_uri, factory, sample, seed, extra) -> tuple[bytes, dict]:
    import time

    index = faiss_build.train(factory, sample, seed)
    blob = faiss_build.serialize(index)
    error = quantization_error(index, sample)
    meta = {
        "factory": factory,
        "train_error": round(error, 6),
        "sample": len(sample),
        "seed": seed,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if blob_uri:
        store.put_bytes(blob_uri, blob)
        store.put_bytes(meta_uri, json.dumps(meta, indent=1).encode())
    return blob, {
        "quantizer": "trained",
        "factory": factory,
        "sample": len(sample),
        "train_error": meta["train_error"],
        **extra,
    }

"""Incremental rebuilds: the driver decides which staged rows already have a stored vector; tasks embed the rest.

    payloads, stores = plan_reuse(cfg, store, root, plan, version)   # driver, before the embed step
    keep, vectors, info = embed_reusing(payload.get("reuse"), store, root, hashes, dim, compute)   # in a task
    register_parts(stores, results)                                  # driver, after the embed step

The driver looks every staged row's content hash up in the embedding store (indexing/embedding_store.py) and
writes, per shard, `staging/<shard>.reuse.npy`: for each row the (part, row) of its stored vector or (-1, -1).
A task reads only the parts its shard refers to, embeds the rows without a stored vector, and writes those as a
new part. Deleted documents are simply not staged, so their vectors are not in the new index (they stay in the
store for older versions). Global ids come from the read order, exactly as in a build from scratch.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import numpy as np

from indexing.embedding_store import EmbeddingStore, encoder_key, store_uri
from indexing.shard_plan import KINDS, ShardPlan
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def plan_reuse(
    cfg, store: ObjectStore, root: str, plan: ShardPlan, version: str
) -> tuple[dict[str, dict], dict[str, tuple[EmbeddingStore, dict]]]:
    """(shard name -> the task's "reuse" payload, kind -> (its embedding store, encoder identity)); both empty
    when `embeddings.reuse` is off."""
    if not cfg.embeddings.reuse:
        return {}, {}
    payloads, stores = {}, {}
    for kind in KINDS:
        shards = plan.of_kind(kind)
        if not shards:
            continue
        key, ident = encoder_key(kind, cfg, store)
        es = EmbeddingStore(store, store_uri(cfg, key))
        stores[kind] = (es, ident)
        for s in shards:
            hashes = store.read_parquet(join(root, s.staging), columns=["hash"])["hash"].to_pylist()
            refs = es.lookup(hashes)
            hit = refs[:, 0] >= 0
            used = np.unique(refs[hit, 0])
            local = refs.copy()
            local[hit, 0] = np.searchsorted(used, refs[hit, 0])  # part numbers within the task's snapshot
            path = f"staging/{s.name}.reuse.npy"
            store.put_bytes(join(root, path), _npy(local))
            payloads[s.name] = {
                "store": es.uri,
                "refs": path,
                "parts": [es.parts[int(p)] for p in used],
                "part": f"{version}-{s.name}",
            }
        log.info("%s: %d stored parts under %s", kind, len(es.parts), es.uri)
    return payloads, stores


def embed_reusing(
    reuse: dict | None,
    store: ObjectStore,
    root: str,
    hashes: list[bytes],
    dim: int,
    compute: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(kept row positions, their vectors, {embedded, reused, part}); `compute(positions)` embeds rows and returns
    (the positions it could embed, their vectors) - an undecodable image is left out, not fatal."""
    n = len(hashes)
    if reuse is None:
        ok, vecs = compute(np.arange(n))
        return ok, vecs, {"embedded": len(ok), "reused": 0, "part": None}
    refs = np.load(io.BytesIO(store.get_bytes(join(root, reuse["refs"]))), allow_pickle=False)
    if len(refs) != n:
        raise ValueError(f"{reuse['refs']}: {len(refs)} rows but the shard has {n}; re-run the build")
    hit = refs[:, 0] >= 0
    es = EmbeddingStore(store, reuse["store"], parts=reuse["parts"])
    ok, new = compute(np.flatnonzero(~hit))
    out = np.zeros((n, dim), np.float32)
    out[hit] = es.gather(refs[hit], dim)
    out[ok] = new
    keep = np.sort(np.concatenate([np.flatnonzero(hit), ok]).astype(np.int64))
    part = es.write_part(reuse["part"], [hashes[i] for i in ok], new) if len(ok) else None
    return keep, out[keep], {"embedded": int(len(ok)), "reused": int(hit.sum()), "part": part}


def register_parts(stores: dict[str, tuple[EmbeddingStore, dict]], plan: ShardPlan, embedded: dict) -> dict:
    """Add the embed step's new parts to each kind's catalog; returns kind -> {embedded, reused[, store]}."""
    out = {}
    for kind in KINDS:
        results = [embedded[s.name] for s in plan.of_kind(kind)]
        if not results:
            continue
        out[kind] = {
            "embedded": sum(r.get("embedded", r["count"]) for r in results),
            "reused": sum(r.get("reused", 0) for r in results),
        }
        if kind in stores:
            es, ident = stores[kind]
            es.register([r.get("stored_part") for r in results], ident)
            out[kind]["store"] = es.uri
    return out

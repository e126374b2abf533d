"""Build and publish an index: plan -> embed shards -> train -> index shards -> verify -> manifest -> CURRENT.

    result = build_index(cfg)      # cfg: IndexBuildConfig; engine "spark" or "sequential" (same outputs)

The version defaults to a hash of the build config and the inputs' fingerprint, so re-running a build that died
resumes it: finished shards whose markers and checksums verify are reused, the rest are recomputed. CURRENT moves
only after the manifest is written, and the manifest only after every shard verified; a failed build leaves the
previous version live.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from urllib.parse import urlparse

import numpy as np

from indexing import faiss_build, quantizers
from indexing.config import IndexBuildConfig
from indexing.distributors import distributor
from indexing.embeddings_io import export_embeddings, from_embeddings, load_embeddings
from indexing.incremental import plan_reuse, register_parts
from indexing.manifest import (
    VerifyError,
    clean_interrupted,
    index_root,
    object_entry,
    publish,
    read_current,
    verify_manifest,
    verify_object,
    version_root,
    write_manifest,
)
from indexing.prepare import prepare, rejects_jsonl
from indexing.readers import expand_paths
from indexing.shard_plan import ShardPlan
from indexing.tasks import embed_shard, finished, index_shard, worker_modules
from pixsearch_core import lineage
from pixsearch_core.engines import code_version
from pixsearch_core.storage import ObjectStore, is_s3, join, local_path

log = logging.getLogger(__name__)


class RejectsExceeded(RuntimeError):
    """More input was rejected than `rejects.max_share` allows."""


def _file_identity(uri: str, store: ObjectStore) -> bytes:
    """Content sha256 of a local file up to 256 MiB; else (size, mtime) locally and (size, ETag) on S3."""
    if is_s3(uri):
        parsed = urlparse(uri)
        head = store.s3.head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        return f"{head['ContentLength']}:{head['ETag']}".encode()
    path = local_path(uri)
    st = path.stat()
    if st.st_size <= 256 << 20:
        return hashlib.sha256(path.read_bytes()).digest()
    return f"{st.st_size}:{st.st_mtime_ns}".encode()


def fingerprint(cfg: IndexBuildConfig, store: ObjectStore) -> str:
    """The inputs' identity: every source file's URI and content (or size and version stamp)."""
    h = hashlib.sha256()
    for src in cfg.sources:
        if src.kind == "demo":
            from indexing.demo_corpus import demo_fingerprint

            h.update(demo_fingerprint().encode())
            continue
        for uri in expand_paths(src.path, store):
            h.update(uri.encode() + b"\0" + _file_identity(uri, store))
    return h.hexdigest()[:16]


def _check_rejects(n_rejects: int, n_inputs: int, cfg: IndexBuildConfig, where: str) -> None:
    share = n_rejects / max(n_inputs, 1)
    if share > cfg.rejects.max_share:
        raise RejectsExceeded(
            f"{n_rejects} of {n_inputs} input records rejected ({share:.1%}) > "
            f"rejects.max_share={cfg.rejects.max_share:.1%}; see {where}"
        )


def _run_step(cfg, store, root, plan, step, fn, expect, extra=None) -> dict[str, dict]:
    """Run `fn` on every shard not already finished; returns shard name -> result (reused or new)."""
    results, todo = {}, []
    for spec in plan.shards:
        marker = finished(store, root, spec, step, expect(spec))
        if marker is not None:
            results[spec.name] = marker
        else:
            todo.append(
                {
                    "cfg": cfg.model_dump(mode="json"),
                    "root": root,
                    "shard": spec.to_dict(),
                    **(extra(spec) if extra else {}),
                }
            )
    log.info("%s: %d shards to run, %d reused from a previous attempt", step, len(todo), len(results))
    for res in distributor(cfg.engine, cfg.spark, worker_modules(cfg))(fn, todo, step):
        results[res["shard"]] = res
    return results


def _training_sample(cfg, store, root, shards, embedded, n: int) -> np.ndarray:
    """A deterministic uniform sample of up to `faiss.train_sample` vectors across the shards, in id order."""
    positions = faiss_build.sample_rows(n, cfg.faiss.train_sample, cfg.faiss.seed)
    picks, offset = [], 0
    for s in shards:
        count = embedded[s.name]["count"]
        mine = positions[(positions >= offset) & (positions < offset + count)] - offset
        offset += count
        if len(mine):
            picks.append(np.load(io.BytesIO(store.get_bytes(join(root, s.embeddings))), allow_pickle=False)[mine])
    return np.concatenate(picks)


def _train(cfg, store, root, plan, kind, embedded, quantizer_store: str | None) -> tuple[str, dict, dict]:
    """Pick the factory and train it on the driver: reuse a verified training of this version (resume), else the
    stored quantizer when the drift test passes (indexing/quantizers.py), else train; -> (factory, entry, info)."""
    shards = plan.of_kind(kind)
    n = sum(embedded[s.name]["count"] for s in shards)
    dim = embedded[shards[0].name]["encoder"]["dim"]
    factory = faiss_build.choose_factory(n, dim, cfg.faiss)
    path, meta_uri = f"trained/{kind}.faiss", join(root, f"trained/{kind}.json")
    if store.exists(meta_uri):
        meta = json.loads(store.get_bytes(meta_uri))
        try:
            if meta["factory"] == factory:
                verify_object(store, root, meta["trained"])
                return factory, meta["trained"], meta.get("info", {})
        except VerifyError:
            pass
    index = faiss_build.new_index(factory, dim)
    info: dict = {"quantizer": "none (exact index, no training)"}
    if not index.is_trained and n:
        sample = _training_sample(cfg, store, root, shards, embedded, n)
        blob, info = quantizers.train_or_reuse(
            store,
            quantizer_store if cfg.faiss.reuse_quantizer else None,
            factory,
            sample,
            cfg.faiss.drift_tolerance,
            cfg.faiss.seed,
        )
    else:
        blob = faiss_build.serialize(index)
    entry = object_entry(path, store.put_bytes(join(root, path), blob), len(blob))
    store.put_bytes(meta_uri, json.dumps({"factory": factory, "trained": entry, "info": info}).encode())
    return factory, entry, info


def _index_manifest(cfg, plan, kind, embedded, indexed, factory, trained, quantizer, reuse) -> dict:
    shards = []
    for s in plan.of_kind(kind):
        e = embedded[s.name]
        shards.append(
            {
                "name": s.name,
                "count": e["count"],
                "id_start": s.id_start,
                "id_end": s.id_end,
                "faiss": indexed[s.name]["faiss"],
                "embeddings": e["embeddings"],
                "docstore": e["docstore"],
            }
        )
    encoder = embedded[plan.of_kind(kind)[0].name]["encoder"]
    return {
        "encoder": encoder,
        "dim": encoder["dim"],
        "factory": factory,
        "metric": "inner_product",
        "nprobe": faiss_build.default_nprobe(factory, cfg.faiss),
        "count": sum(s["count"] for s in shards),
        "bytes_per_vector": faiss_build.bytes_per_vector(factory, encoder["dim"]),
        "trained": trained,
        "quantizer": quantizer,
        "embeddings": reuse.get(kind, {}),
        "shards": shards,
    }


def prepare_and_embed(cfg: IndexBuildConfig, store: ObjectStore, root: str, version: str):
    """Stage the corpus and embed it (reusing stored vectors): -> (plan, rejects, embedded, reuse counts, seconds)."""
    plan, rejects = prepare(cfg, store, root)
    store.put_bytes(join(root, "plan.json"), json.dumps(plan.to_dict(), indent=1).encode())
    store.put_bytes(join(root, "rejects/prepare.jsonl"), rejects_jsonl(rejects))
    _check_rejects(len(rejects), plan.counts["inputs"], cfg, join(root, "rejects/prepare.jsonl"))
    t_embed = time.perf_counter()
    payloads, stores = plan_reuse(cfg, store, root, plan, version)
    embedded = _run_step(
        cfg,
        store,
        root,
        plan,
        "embed",
        embed_shard,
        lambda s: {"staging_sha256": s.staging_sha256},
        lambda s: {"reuse": payloads[s.name]} if s.name in payloads else {},
    )
    t_embed = time.perf_counter() - t_embed
    reuse = register_parts(stores, plan, embedded)
    rejects += [r for s in plan.shards for r in embedded[s.name]["rejects"]]
    log.info("embedding: %s", {k: {"embedded": v["embedded"], "reused": v["reused"]} for k, v in reuse.items()})
    return plan, rejects, embedded, reuse, t_embed


def _version(cfg: IndexBuildConfig, store: ObjectStore) -> tuple[str, str]:
    fp = fingerprint(cfg, store)
    return fp, (cfg.version if cfg.version != "auto" else f"v-{cfg.build_hash()[:8]}-{fp[:8]}")


def embed_corpus(cfg: IndexBuildConfig, out: str, store: ObjectStore | None = None) -> dict:
    """`pixsearch index embed`: stage and embed like a build (same version directory, so a later build of the same
    config resumes from it), then write the embeddings artifact to `out` (indexing/embeddings_io.py)."""
    store = store or ObjectStore(cfg.storage)
    fp, version = _version(cfg, store)
    root = version_root(cfg.output, cfg.name, version)
    plan, rejects, embedded, reuse, seconds = prepare_and_embed(cfg, store, root, version)
    source = {
        "name": cfg.name,
        "version": version,
        "corpus_fingerprint": fp,
        "config_hash": cfg.config_hash(),
        "counts": plan.counts,
    }
    kinds = export_embeddings(store, root, plan, embedded, out, source)
    store.put_bytes(join(out, "rejects.jsonl"), rejects_jsonl(rejects))
    return {"out": out, "kinds": kinds, "embedding": reuse, "rejects": len(rejects), "embed_seconds": round(seconds, 3)}


def build_index(cfg: IndexBuildConfig, store: ObjectStore | None = None) -> dict:
    """Build, verify and (unless cfg.publish is false) publish; returns {"version_uri", "manifest", "reused": bool}."""
    store = store or ObjectStore(cfg.storage)
    t0 = time.perf_counter()
    clean_interrupted(store, index_root(cfg.output, cfg.name))
    fp, version = _version(cfg, store)
    idx_uri, root = index_root(cfg.output, cfg.name), version_root(cfg.output, cfg.name, version)
    if store.exists(join(root, "manifest.json")):
        verify_manifest(store, root)
        if cfg.publish and read_current(store, idx_uri) != version:
            publish(store, idx_uri, version)
        log.info("%s is already built and verified; CURRENT -> %s", root, read_current(store, idx_uri))
        return {
            "version_uri": root,
            "manifest": json.loads(store.get_bytes(join(root, "manifest.json"))),
            "reused": True,
        }
    log.info("building %s (engine=%s)", root, cfg.engine)
    if from_embeddings(cfg):
        plan, rejects, embedded, reuse, t_embed = load_embeddings(cfg, store, root)
    else:
        plan, rejects, embedded, reuse, t_embed = prepare_and_embed(cfg, store, root, version)
    rejects_file = "rejects.jsonl"
    blob = rejects_jsonl(rejects)
    rej_entry = object_entry(rejects_file, store.put_bytes(join(root, rejects_file), blob), len(blob))
    _check_rejects(len(rejects), plan.counts["inputs"], cfg, join(root, rejects_file))
    trained = {
        k: _train(cfg, store, root, plan, k, embedded, reuse.get(k, {}).get("store"))
        for k in ("text", "image")
        if plan.of_kind(k)
    }
    indexed = _run_step(
        cfg,
        store,
        root,
        plan,
        "index",
        index_shard,
        lambda s: {"trained_sha256": trained[s.kind][1]["sha256"]},
        lambda s: {"trained": trained[s.kind][1]},
    )
    manifest = _manifest(
        cfg,
        plan,
        version,
        fp,
        embedded,
        indexed,
        trained,
        rejects,
        rej_entry,
        reuse,
        {"embed_seconds": t_embed, "total_seconds": time.perf_counter() - t0},
    )
    verify_manifest(store, root, {"schema_version": 1, **manifest})
    write_manifest(store, root, manifest)
    if cfg.publish:
        publish(store, idx_uri, version)
    else:
        log.info("built %s; not published (publish=false), CURRENT stays %s", root, read_current(store, idx_uri))
    if not cfg.keep_staging:
        store.delete_prefix(join(root, "staging"))
    return {"version_uri": root, "manifest": manifest, "reused": False}


def _manifest(cfg, plan: ShardPlan, version, fp, embedded, indexed, trained, rejects, rej_entry, reuse, times) -> dict:
    from collections import Counter

    c = plan.counts
    wall = max(times["embed_seconds"], 1e-9)
    rate = {f"{k}_per_s": round(c[k] / wall, 2) for k in ("documents", "passages", "images")}
    for kind, unit in (("text", "passages"), ("image", "images")):  # per task-second: about per core/GPU
        task_s = sum(embedded[s.name]["seconds"] for s in plan.of_kind(kind))
        rate[f"{unit}_per_task_s"] = round(c[unit] / task_s, 2) if task_s else None
    log.info(
        "embedded %d documents (%d passages) and %d images in %.1fs: %s",
        c["documents"],
        c["passages"],
        c["images"],
        times["embed_seconds"],
        rate,
    )
    return {
        "name": cfg.name,
        "version": version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_hash": cfg.config_hash(),
        "build_hash": cfg.build_hash(),
        "corpus": {"sources": [s.model_dump(mode="json") for s in cfg.sources], "fingerprint": fp, "counts": c},
        "indices": {k: _index_manifest(cfg, plan, k, embedded, indexed, *trained[k], reuse) for k in trained},
        "lineage": {
            "config_hash": cfg.config_hash(),
            "corpus_fingerprint": fp,
            "encoders": lineage.encoder_versions({k: embedded[plan.of_kind(k)[0].name]["encoder"] for k in trained}),
        },
        "rejects": {
            "total": len(rejects),
            "by_reason": dict(sorted(Counter(r["reason"] for r in rejects).items())),
            "share": round(len(rejects) / max(c["inputs"], 1), 6),
            "max_share": cfg.rejects.max_share,
            "file": rej_entry,
        },
        "stats": {**{k: round(v, 3) for k, v in times.items()}, **rate, "engine": cfg.engine},
        "code": code_version(),
    }

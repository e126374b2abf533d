"""Executor side of a build: one task per shard (Reader -> Mapper -> Writer), the same code in Spark and in-process.

`embed_shard` reads the shard's staged rows, takes the vectors the embedding store already holds (the driver's
`staging/<shard>.reuse.npy`, indexing/incremental.py), embeds the rest with the per-process cached encoder, writes
those to the embedding store as a new part, and writes the
shard's embeddings (`emb/<shard>.npy`, rows in id order), document store (`docs/<shard>.parquet`) and rejects.
`index_shard` adds those embeddings, under their global ids, to a copy of the trained index (`faiss/<shard>.faiss`).
Each task writes a `done/<shard>.<step>.json` marker last, listing its objects with their sha256; a rebuild reuses
a shard whose marker matches its staging input and whose objects verify.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexing.config import IndexBuildConfig
from indexing.devices import GPU_SHARE_ENV
from indexing.incremental import embed_reusing
from indexing.manifest import VerifyError, object_entry, verify_object
from indexing.passages import embed_text
from indexing.shard_plan import ShardSpec
from pixsearch_core.storage import ObjectStore, StorageConfig, join

log = logging.getLogger(__name__)

#: test hook: a shard name whose embedding task fails (simulates a crash half-way through a build)
FAIL_ENV = "PIXSEARCH_INJECT_FAILURE"


def worker_modules(cfg: IndexBuildConfig) -> tuple[str, ...]:
    """The modules this build's tasks import: what a Spark daemon preloads for its workers (spark_daemon.py)."""
    mods = ["indexing.tasks", "torch", "sentence_transformers"]
    if cfg.image_encoder.kind == "dinov2-onnx":
        mods.append("onnxruntime")
    elif cfg.image_encoder.kind == "hf":
        mods.append("transformers")
    return tuple(mods)


def marker_path(spec: ShardSpec, step: str) -> str:
    return f"done/{spec.name}.{step}.json"


def _put(store: ObjectStore, root: str, path: str, data: bytes) -> dict:
    return object_entry(path, store.put_bytes(join(root, path), data), len(data))


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _decode(data: bytes, max_pixels: int):
    """bytes -> RGB PIL image; raises ValueError / OSError for undecodable, truncated or oversized images."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    if img.width * img.height > max_pixels:
        raise ValueError(f"{img.width}x{img.height} exceeds image_encoder.max_pixels={max_pixels}")
    img.load()  # decodes fully: truncated files fail here
    return img.convert("RGB")


_SETTLED: set[int] = set()


def _settle(enc) -> None:
    """In a Spark worker, once per encoder: freeze everything alive (the encoder, its libraries) out of the cyclic
    garbage collector. PySpark's reused worker runs `gc.collect()` after every task, and walking the ~500k objects
    of torch, transformers and the model took ~0.5 s a task on this project's loaded 2-core machine. Objects
    created later are collected as usual."""
    if id(enc) in _SETTLED or not _in_spark_task():
        return
    import gc

    gc.collect()
    gc.freeze()
    _SETTLED.add(id(enc))


def _in_spark_task() -> bool:
    try:
        from pyspark import TaskContext
    except ImportError:
        return False
    return TaskContext.get() is not None


def _limit_threads() -> None:
    """Inside a Spark task, use only the task's cores (`spark.task.cpus`): two tasks per executor must not both take
    them all. Covers torch's intra-op pool, onnxruntime's, and the tokenizer's (Rust) pool for one-core tasks."""
    try:
        from pyspark import TaskContext
    except ImportError:
        return
    ctx = TaskContext.get()
    if ctx is not None:
        import torch

        cpus = max(1, int(ctx.cpus()))
        torch.set_num_threads(cpus)
        os.environ["PIXSEARCH_ORT_THREADS"] = str(cpus)
        if cpus == 1:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"


class _Stages:
    """Wall seconds per stage of one task (model load, read, encode, write) and which process ran it; kept under
    the result's `stats`, which like `seconds` says how fast, not what (left out when builds are compared)."""

    def __init__(self):
        self.stats: dict = {"pid": os.getpid(), "start": time.time()}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stats[f"{stage}_s"] = self.stats.get(f"{stage}_s", 0.0) + now - self._last
        self._last = now

    def done(self) -> dict:
        torch = sys.modules.get("torch")  # an image-only task with the ONNX encoder need not import it
        return {**self.stats, "end": time.time(), "torch_threads": torch.get_num_threads() if torch else None}


def _text_compute(table: pa.Table, enc, cfg: IndexBuildConfig):
    rows = table.select(["title", "text"]).to_pylist()

    def compute(pos):
        return pos, enc.encode([embed_text(rows[i]["title"], rows[i]["text"], cfg.passages) for i in pos])

    return compute


def _image_compute(table: pa.Table, enc, cfg: IndexBuildConfig, rejects: list[dict]):
    keys, blobs = table["key"].to_pylist(), table["bytes"]

    def compute(pos):
        ok, images = [], []
        for i in pos:
            try:
                images.append(_decode(blobs[int(i)].as_py(), cfg.image_encoder.max_pixels))
                ok.append(i)
            except Exception as e:  # PIL raises many types for bad files; each is a reject, not a crash
                rejects.append(
                    {"reason": "undecodable_image", "id": keys[i], "detail": f"{type(e).__name__}: {e}"[:500]}
                )
        return np.array(ok, np.int64), enc.encode(images)

    return compute


def embed_shard(payload: dict) -> dict:
    cfg = IndexBuildConfig.model_validate(payload["cfg"])
    spec, root = ShardSpec(**payload["shard"]), payload["root"]
    if os.environ.get(FAIL_ENV) == spec.name:
        raise RuntimeError(f"injected failure in {spec.name} ({FAIL_ENV})")
    store = ObjectStore(StorageConfig.model_validate(payload["cfg"]["storage"]))
    _limit_threads()
    os.environ[GPU_SHARE_ENV] = str(cfg.spark.gpus_per_task or 1)
    from indexing.embedders import cached_image_encoder, cached_text_encoder

    t0, stages = time.perf_counter(), _Stages()
    table = store.read_parquet(join(root, spec.staging))
    hashes = table["hash"].to_pylist()
    stages.lap("read")
    rejects: list[dict] = []
    if spec.kind == "text":
        enc = cached_text_encoder(cfg.text_encoder, cfg.cache_dir, cfg.storage)
        compute = _text_compute(table, enc, cfg)
    else:
        enc = cached_image_encoder(cfg.image_encoder, cfg.cache_dir, cfg.storage)
        compute = _image_compute(table, enc, cfg, rejects)
    _settle(enc)
    stages.lap("load")

    def timed(pos):
        stages.lap("read")  # the driver's reuse refs
        try:
            return compute(pos)
        finally:
            stages.lap("encode")

    keep, vectors, reuse = embed_reusing(payload.get("reuse"), store, root, hashes, enc.dim, timed)
    docstore = table.drop_columns([c for c in ("bytes", "hash") if c in table.column_names])
    if len(keep) != len(table):
        docstore = docstore.take(pa.array(keep, pa.int64()))
    out = {
        "shard": spec.name,
        "count": len(vectors),
        "encoder": enc.spec,
        "staging_sha256": spec.staging_sha256,
        "rejects": rejects,
        "embedded": reuse["embedded"],
        "reused": reuse["reused"],
        "stored_part": reuse["part"],
        "embeddings": _put(store, root, spec.embeddings, _npy_bytes(vectors)),
    }
    buf = io.BytesIO()
    pq.write_table(docstore, buf, compression="zstd", row_group_size=4096)
    out["docstore"] = _put(store, root, spec.docstore, buf.getvalue())
    stages.lap("write")  # reused vectors gathered, the new part, embeddings and document store written
    out["seconds"], out["stats"] = time.perf_counter() - t0, stages.done()
    store.put_bytes(join(root, marker_path(spec, "embed")), json.dumps(out, sort_keys=True).encode())
    log.info(
        "%s: %d vectors (%d embedded, %d reused) in %.1fs",
        spec.name,
        len(vectors),
        reuse["embedded"],
        reuse["reused"],
        out["seconds"],
    )
    return out


def index_shard(payload: dict) -> dict:
    from indexing.faiss_build import add_shard

    spec, root = ShardSpec(**payload["shard"]), payload["root"]
    store = ObjectStore(StorageConfig.model_validate(payload["cfg"]["storage"]))
    vectors = np.load(io.BytesIO(store.get_bytes(join(root, spec.embeddings))), allow_pickle=False)
    ids = store.read_parquet(join(root, spec.docstore), columns=["id"])["id"].to_numpy()
    blob = add_shard(store.get_bytes(join(root, payload["trained"]["uri"])), vectors, ids)
    out = {
        "shard": spec.name,
        "trained_sha256": payload["trained"]["sha256"],
        "faiss": _put(store, root, spec.faiss, blob),
    }
    store.put_bytes(join(root, marker_path(spec, "index")), json.dumps(out, sort_keys=True).encode())
    return out


def finished(store: ObjectStore, root: str, spec: ShardSpec, step: str, expect: dict) -> dict | None:
    """The marker of a finished step whose inputs match `expect` and whose objects verify, else None."""
    uri = join(root, marker_path(spec, step))
    if not store.exists(uri):
        return None
    marker = json.loads(store.get_bytes(uri))
    if any(marker.get(k) != v for k, v in expect.items()):
        return None
    try:
        for key in ("embeddings", "docstore", "faiss"):
            if key in marker:
                verify_object(store, root, marker[key])
    except VerifyError as e:
        log.warning("%s: redoing %s (%s)", spec.name, step, e)
        return None
    return marker

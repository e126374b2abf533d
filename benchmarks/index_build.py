"""Index build throughput and index quality, measured in one run.

    python benchmarks/index_build.py [--words 40] [--master local[2]] [--out /tmp/pixsearch-bench]
    python benchmarks/index_build.py --spark-only --max-articles 6 --per-shard 150     # part 1 only, a few minutes

1. The embed stage of a Spark build (`engine=spark`, local[2], two one-thread tasks) over the demo's Wikipedia
   articles cut into ~40-word passages, against a plain loop with the same encoder and batch size in a fresh
   Python process (`--loop-threads` torch threads, 2 by default: the same two cores), run once before and once
   after the Spark stage (the machine's load drifts). Both are timed including their own start: the Spark stage
   from submission (daemon and workers start, imports, encoder load, read, encode, write) with the JVM already up
   (its start is reported on its own), the loop from process start (imports, encoder load, read, encode). Also
   reported: each task's stages summed, the engine's CPU per 1k passages, the load average, and the largest
   difference between the loop's and Spark's vectors. Every run embeds everything (embedding reuse is off).
2. recall@10 of the FAISS family the builder picks at a small memory budget (OPQ+IVF+PQ) against exact search on
   the same vectors, with bytes per vector.
3. Image encoder on the demo photos: images/s, and recall@1 of a photo's own document for a cropped + mirrored
   copy of it, for CLS and CLS+mean pooling (how the default pooling was chosen).
Prints one human-readable block and one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexing import faiss_build  # noqa: E402
from indexing.config import FaissConfig, ImageEncoderConfig, IndexBuildConfig  # noqa: E402
from indexing.demo_corpus import photo_files, wiki_dump_path  # noqa: E402
from indexing.embedders import image_encoder, text_encoder  # noqa: E402
from indexing.passages import embed_text  # noqa: E402
from pixsearch_core.config import validate_config  # noqa: E402
from pixsearch_core.storage import join  # noqa: E402


def _bench_config(args):
    source = {"kind": "mediawiki", "path": str(wiki_dump_path())}
    if args.max_articles:
        source["max_records"] = args.max_articles
    return validate_config(
        IndexBuildConfig,
        {
            "name": "bench",
            "output": args.out,
            "engine": "spark",
            "version": f"bench-{int(time.time())}",
            "sources": [source],
            "passages": {"words": args.words},
            "image_encoder": {"kind": "none"},
            "shards": {"passages_per_shard": args.per_shard},
            "spark": {"master": args.master, "conf": {"spark.ui.enabled": "false"}},
            "text_encoder": {"batch_size": 64, "device": "cpu"},
            "embeddings": {"reuse": False},  # every run embeds everything (no vectors from an earlier run)
            "keep_staging": False,
        },
    )


def _engine_cpu_seconds() -> float:
    """CPU seconds used so far by this process's descendants: the Spark JVM and its Python workers."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _loop(cfg, root: str, shards, threads: int, work: Path) -> tuple[dict, np.ndarray]:
    """The baseline, a plain loop in a fresh Python process with `threads` torch threads: import, load the encoder,
    read each staged shard, encode it. Timed from the process's start, as Spark's stage includes its workers'."""
    spec = work / "loop.json"
    spec.write_text(
        json.dumps({"cfg": cfg.model_dump(mode="json"), "staging": [join(root, s.staging) for s in shards]})
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--loop-child", str(spec), "--loop-threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    vectors = np.load(work / "loop.npy")
    n = len(vectors)
    res.update(threads=threads, process_s=round(wall, 2), passages_per_s=round(n / wall, 2))
    res["encode_only_passages_per_s"] = round(n / res["encode_s"], 2)
    return res, vectors


def loop_child(spec_path: str, threads: int) -> None:
    """The loop's process: prints {import_s, model_load_s, encode_s, cpu_s_per_1k}, writes the vectors beside."""
    t0, c0 = time.perf_counter(), time.process_time()
    import torch

    from indexing.config import IndexBuildConfig
    from pixsearch_core.storage import ObjectStore

    torch.set_num_threads(threads)
    spec = json.loads(Path(spec_path).read_text())
    cfg, store = IndexBuildConfig.model_validate(spec["cfg"]), ObjectStore()
    import sentence_transformers  # noqa: F401

    t1 = time.perf_counter()
    enc = text_encoder(cfg.text_encoder, cfg.cache_dir)
    t2 = time.perf_counter()
    vectors = []
    for uri in spec["staging"]:
        rows = store.read_parquet(uri, columns=["title", "text"]).to_pylist()
        vectors.append(enc.encode([embed_text(r["title"], r["text"], cfg.passages) for r in rows]))
    vectors = np.concatenate(vectors)
    np.save(Path(spec_path).with_suffix(".npy"), vectors)
    out = {"import_s": t1 - t0, "model_load_s": t2 - t1, "encode_s": time.perf_counter() - t2}
    out = {k: round(v, 2) for k, v in out.items()}
    out["cpu_s_per_1k"] = round(1000 * (time.process_time() - c0) / len(vectors), 1)
    print(json.dumps(out))


def _task_stages(embedded: dict, shards) -> dict:
    """Sum of each executor stage over the embed tasks, and how many Python workers ran them."""
    stats = [embedded[s.name]["stats"] for s in shards]
    out = {k: round(sum(st[k] for st in stats), 2) for k in ("load_s", "read_s", "encode_s", "write_s")}
    out["workers"] = len({st["pid"] for st in stats})
    out["torch_threads"] = sorted({st["torch_threads"] for st in stats if st["torch_threads"]})
    out["first_start_to_last_end_s"] = round(max(st["end"] for st in stats) - min(st["start"] for st in stats), 2)
    return out


def spark_vs_loop(args) -> tuple[dict, np.ndarray]:
    """The embed stage as a build runs it with engine=spark, between two runs of the plain loop (same shards)."""
    from indexing.build import prepare_and_embed
    from indexing.manifest import version_root
    from indexing.prepare import prepare
    from indexing.tasks import worker_modules
    from pixsearch_core.engines import spark_session
    from pixsearch_core.storage import ObjectStore

    cfg = _bench_config(args)
    store = ObjectStore()
    root = version_root(cfg.output, cfg.name, cfg.version)
    t0 = time.perf_counter()
    # the JVM starts once per application, before any stage: timed on its own
    spark_session(cfg.spark, () if args.no_preload else worker_modules(cfg))
    session_s = time.perf_counter() - t0
    loop_root = root + "-loop"
    loop_plan, _ = prepare(cfg, store, loop_root)  # the same staged shards, for the loop
    loop_shards = loop_plan.of_kind("text")
    work = Path(tempfile.mkdtemp(prefix="pixsearch-bench-"))
    loops = [_loop(cfg, loop_root, loop_shards, args.loop_threads, work)]
    load = [os.getloadavg()[0]]
    cpu0 = _engine_cpu_seconds()
    plan, _, embedded, _, embed_s = prepare_and_embed(cfg, store, root, cfg.version)
    spark_cpu = _engine_cpu_seconds() - cpu0
    load.append(os.getloadavg()[0])
    loops.append(_loop(cfg, loop_root, loop_shards, args.loop_threads, work))
    if args.per_core:
        loops.append(_loop(cfg, loop_root, loop_shards, 1, work))
    load.append(os.getloadavg()[0])
    shards = plan.of_kind("text")
    n = sum(embedded[s.name]["count"] for s in shards)
    spark_vectors = np.concatenate(
        [np.load(io.BytesIO(store.get_bytes(join(root, embedded[s.name]["embeddings"]["uri"])))) for s in shards]
    )
    for res, vectors in loops:
        res["max_abs_diff_vs_spark"] = float(np.abs(vectors - spark_vectors).max())
    loop_rate = (loops[0][0]["passages_per_s"] + loops[1][0]["passages_per_s"]) / 2
    spark_rate = n / embed_s
    for uri in (root, loop_root):
        store.delete_prefix(uri)
    shutil.rmtree(work)
    return {
        "passages": n,
        "documents": plan.counts["documents"],
        "shards": len(shards),
        "master": args.master,
        "spark_session_start_s": round(session_s, 2),
        "spark_embed_stage_s": round(embed_s, 2),
        "spark_passages_per_s": round(spark_rate, 2),
        "spark_engine_cpu_s_per_1k": round(1000 * spark_cpu / n, 1),
        "spark_task_stages": _task_stages(embedded, shards),
        "loops": [res for res, _ in loops],
        "loop_passages_per_s": round(loop_rate, 2),
        "spark_over_loop": round(spark_rate / loop_rate, 3),
        "load_average_1min": load,
    }, spark_vectors


def _load_vectors(version_uri: str) -> np.ndarray:
    from pixsearch_core.storage import ObjectStore

    store = ObjectStore()
    manifest = json.loads(store.get_bytes(join(version_uri, "manifest.json")))
    return np.concatenate(
        [
            np.load(io.BytesIO(store.get_bytes(join(version_uri, s["embeddings"]["uri"]))))
            for s in manifest["indices"]["text"]["shards"]
        ]
    )


def recall_at_10(vectors: np.ndarray, budget_mb: float, queries: int = 500, factory: str | None = None) -> dict:
    cfg = FaissConfig(memory_budget_mb=budget_mb, exact_max_vectors=1000, train_sample=len(vectors), factory=factory)
    factory = faiss_build.choose_factory(len(vectors), vectors.shape[1], cfg)
    ids = np.arange(len(vectors))
    index = faiss_build.deserialize(
        faiss_build.add_shard(faiss_build.serialize(faiss_build.train(factory, vectors)), vectors, ids)
    )
    nprobe = faiss_build.default_nprobe(factory, cfg)
    faiss_build.set_nprobe(index, nprobe)
    exact = faiss_build.new_index("IDMap,Flat", vectors.shape[1])
    exact.add_with_ids(vectors, ids)
    q = vectors[faiss_build.sample_rows(len(vectors), queries, seed=1)]
    _, want = exact.search(q, 10)
    _, got = index.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want, got)])
    return {
        "factory": factory,
        "nprobe": nprobe,
        "recall_at_10": round(float(recall), 4),
        "bytes_per_vector": faiss_build.bytes_per_vector(factory, vectors.shape[1]),
        "exact_bytes_per_vector": faiss_build.bytes_per_vector("IDMap,Flat", vectors.shape[1]),
    }


def image_quality() -> dict:
    from PIL import Image

    photos = photo_files()
    originals = [Image.open(p).convert("RGB") for _, p, _, _ in photos]
    queries = [
        im.crop((im.width // 10, im.height // 10, im.width * 9 // 10, im.height * 9 // 10)).transpose(
            Image.FLIP_LEFT_RIGHT
        )
        for im in originals
    ]
    out = {"photos": len(photos)}
    for pooling in ("cls", "cls+mean"):
        enc = image_encoder(ImageEncoderConfig(pooling=pooling, device="cpu"), "")
        t0 = time.perf_counter()
        db = enc.encode(originals)
        rate = len(originals) / (time.perf_counter() - t0)
        top1 = np.argmax(enc.encode(queries) @ db.T, axis=1)
        out[pooling] = {
            "recall_at_1": round(float(np.mean(top1 == np.arange(len(photos)))), 3),
            "images_per_s": round(rate, 2),
        }
    return out


def _print_summary(result: dict) -> None:
    t, f, im = result["throughput"], result.get("faiss"), result.get("images")
    if t:
        print(f"passages: {t['passages']} from {t['documents']} documents in {t['shards']} shards")
        print(
            f"Spark ({t['master']}, embed stage): {t['spark_passages_per_s']} passages/s; single-process loop "
            f"({t['loops'][0]['threads']} torch threads, mean of the runs before and after): "
            f"{t['loop_passages_per_s']} passages/s; ratio spark/loop = {t['spark_over_loop']}"
        )
        for loop in t["loops"]:
            print(f"  loop: {loop}")
        print(f"  Spark session start (once per application, not in the stage): {t['spark_session_start_s']} s")
        print(f"  Spark tasks (summed over tasks): {t['spark_task_stages']}")
        print(f"  engine CPU (JVM + Python workers) per 1k passages: {t['spark_engine_cpu_s_per_1k']} s")
        print(f"  1-min load average before, between, after: {t['load_average_1min']}")
    if f:
        print(
            f"FAISS {f['factory']} (nprobe {f['nprobe']}): recall@10 vs exact = {f['recall_at_10']}, "
            f"{f['bytes_per_vector']} bytes/vector (exact: {f['exact_bytes_per_vector']})"
        )
    if im:
        print(
            f"images ({im['photos']} photos): cls recall@1 {im['cls']['recall_at_1']} at "
            f"{im['cls']['images_per_s']} images/s; cls+mean recall@1 {im['cls+mean']['recall_at_1']}"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--words", type=int, default=40, help="words per passage (40 -> about 12k passages)")
    p.add_argument("--per-shard", type=int, default=1500)
    p.add_argument("--max-articles", type=int, help="read only the first N of the demo's articles (shorter run)")
    p.add_argument("--loop-threads", type=int, default=2, help="torch threads of the baseline loop")
    p.add_argument("--per-core", action="store_true", help="also time the loop with one torch thread")
    p.add_argument("--no-preload", action="store_true", help="Spark workers import the encoder libraries themselves")
    p.add_argument("--spark-only", action="store_true", help="run only part 1 (Spark vs the loop)")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--budget-mb", type=float, default=0.5, help="memory budget for the recall measurement")
    p.add_argument("--out", default="/tmp/pixsearch-bench")
    p.add_argument("--factory", help="measure this FAISS factory instead of the one the budget picks")
    p.add_argument("--omp-threads", type=int, default=0, help="FAISS training threads (0 = all; 1 on busy hosts)")
    p.add_argument(
        "--quality-only",
        metavar="VERSION_URI",
        help="skip the throughput run; measure recall on the embeddings of this built index version",
    )
    p.add_argument("--loop-child", metavar="SPEC", help=argparse.SUPPRESS)  # the baseline loop's own process
    args = p.parse_args()
    if args.loop_child:
        loop_child(args.loop_child, args.loop_threads)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.omp_threads:
        import faiss

        faiss.omp_set_num_threads(args.omp_threads)
    if args.quality_only:
        throughput, vectors = None, _load_vectors(args.quality_only)
    else:
        throughput, vectors = spark_vs_loop(args)
    result = {"throughput": throughput}
    if not args.spark_only:
        result["faiss"] = recall_at_10(vectors, args.budget_mb, factory=args.factory)
        result["images"] = image_quality()
    _print_summary(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

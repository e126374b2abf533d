"""Index build throughput and index quality, measured in one run.

    python perf/index_build.py [--words 40] [--master local[2]] [--out /tmp/pixsearch-bench]

1. Spark job (`engine=spark`, local[2]) over the demo's 106 Wikipedia articles cut into ~40-word passages (>10k)
   against a plain single-process loop with the same encoder and batch size: passages/s and the ratio.
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
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexing import faiss_build  # noqa: E402
from indexing.build import build_index  # noqa: E402
from indexing.config import FaissConfig, ImageEncoderConfig, IndexBuildConfig  # noqa: E402
from indexing.demo_corpus import photo_files, wiki_dump_path  # noqa: E402
from indexing.embedders import image_encoder, text_encoder  # noqa: E402
from indexing.passages import embed_text  # noqa: E402
from pixsearch_core.config import validate_config  # noqa: E402


def spark_vs_loop(args) -> dict:
    cfg = validate_config(
        IndexBuildConfig,
        {
            "name": "bench",
            "output": args.out,
            "engine": "spark",
            "version": f"bench-{int(time.time())}",
            "sources": [{"kind": "mediawiki", "path": str(wiki_dump_path())}],
            "passages": {"words": args.words},
            "image_encoder": {"kind": "none"},
            "shards": {"passages_per_shard": args.per_shard},
            "spark": {"master": args.master},
            "text_encoder": {"batch_size": 64, "device": "cpu"},
            "keep_staging": False,
        },
    )
    res = build_index(cfg)
    m = res["manifest"]
    n = m["indices"]["text"]["count"]
    spark_rate = n / m["stats"]["embed_seconds"]
    # the baseline: the same passages and encoder, one process, one loop (model load not timed)
    import pyarrow.parquet as pq

    from pixsearch_core.storage import ObjectStore, join

    store = ObjectStore()
    rows = []
    for s in m["indices"]["text"]["shards"]:
        rows += pq.read_table(io.BytesIO(store.get_bytes(join(res["version_uri"], s["docstore"]["uri"])))).to_pylist()
    enc = text_encoder(cfg.text_encoder, cfg.cache_dir)
    t0 = time.perf_counter()
    vectors = enc.encode([embed_text(r["title"], r["text"], cfg.passages) for r in rows])
    loop_rate = n / (time.perf_counter() - t0)
    return {
        "passages": n,
        "documents": m["corpus"]["counts"]["documents"],
        "shards": len(m["indices"]["text"]["shards"]),
        "spark_passages_per_s": round(spark_rate, 2),
        "loop_passages_per_s": round(loop_rate, 2),
        "spark_over_loop": round(spark_rate / loop_rate, 3),
        "spark_build_seconds": m["stats"]["total_seconds"],
        "master": args.master,
    }, vectors


def _load_vectors(version_uri: str) -> np.ndarray:
    from pixsearch_core.storage import ObjectStore, join

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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--words", type=int, default=40, help="words per passage (40 -> about 12k passages)")
    p.add_argument("--per-shard", type=int, default=1500)
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
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.omp_threads:
        import faiss

        faiss.omp_set_num_threads(args.omp_threads)
    if args.quality_only:
        throughput, vectors = None, _load_vectors(args.quality_only)
    else:
        throughput, vectors = spark_vs_loop(args)
    result = {
        "throughput": throughput,
        "faiss": recall_at_10(vectors, args.budget_mb, factory=args.factory),
        "images": image_quality(),
    }
    t, f, im = result["throughput"], result["faiss"], result["images"]
    if t:
        print(f"passages: {t['passages']} from {t['documents']} documents in {t['shards']} shards")
        print(
            f"Spark ({t['master']}): {t['spark_passages_per_s']} passages/s; single-process loop: "
            f"{t['loop_passages_per_s']} passages/s; ratio spark/loop = {t['spark_over_loop']}"
        )
    print(
        f"FAISS {f['factory']} (nprobe {f['nprobe']}): recall@10 vs exact = {f['recall_at_10']}, "
        f"{f['bytes_per_vector']} bytes/vector (exact: {f['exact_bytes_per_vector']})"
    )
    print(
        f"images ({im['photos']} photos): cls recall@1 {im['cls']['recall_at_1']} at {im['cls']['images_per_s']} "
        f"images/s; cls+mean recall@1 {im['cls+mean']['recall_at_1']}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

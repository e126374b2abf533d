"""FAISS at scale: an N x 384 index built in chunks from a synthetic clustered source, within bounded memory.

    python benchmarks/index_scale.py --n 100000                 # minutes on 2 cores
    python benchmarks/index_scale.py --n 10000000 --work /big/disk   # the 10M run: hours on 2 cores, ~2 GiB RSS

Source: unit vectors around 4096 random cluster centres (centre norm ~20, spread ~4 within a shared 48-dimensional
subspace plus ~2 isotropic: real sentence embeddings are clustered with a low intrinsic dimension), generated chunk by chunk from per-chunk seeds, so no
step holds more than one chunk of raw vectors. Steps, each timed: train the factory the builder chooses
(indexing/faiss_build.choose_factory; default budget: 72 bytes per vector, i.e. OPQ64 + IVF + PQ64 with its
8-byte id; an HNSW coarse quantizer once there are >= 4096 lists, as autofaiss does) on a sample; add the vectors
shard by shard (each shard written to disk, then freed); merge the shards; choose nprobe on a held-out tuning
sample as the smallest that reaches the target recall@10 (autofaiss's way), then report recall@10 against exact
search (streamed over the chunks) on a separate query sample, QPS batched and one by one, bytes per vector and
peak RSS. If the budget's factory misses the target at every nprobe, the same IVF with 8-bit scalar codes
(392 bytes/vector) is built and measured too, and the verdict names the code size that reaches it (or not).
Prints a human-readable block and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexing import faiss_build  # noqa: E402
from indexing.config import FaissConfig  # noqa: E402

DIM, CENTRES, SUBSPACE = 384, 4096, 48
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Source:
    """Deterministic clustered unit vectors; chunk c is the same on every call."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
        self.basis = np.linalg.qr(rng.normal(size=(DIM, SUBSPACE)))[0].T.astype(np.float32)  # (48, 384)
        self.seed = seed

    def vectors(self, n: int, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream])
        x = self.centres[rng.integers(0, CENTRES, n)]
        x += 0.6 * rng.normal(size=(n, SUBSPACE)).astype(np.float32) @ self.basis
        x += 0.1 * rng.normal(size=(n, DIM)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunks(n: int, size: int):
    for c, start in enumerate(range(0, n, size)):
        yield c, start, min(size, n - start)


def factory_for(n: int, budget_mb: float) -> str:
    f = faiss_build.choose_factory(n, DIM, FaissConfig(memory_budget_mb=budget_mb, exact_max_vectors=1))
    nlist = int(f.split("IVF")[1].split(",")[0])
    return f.replace(f"IVF{nlist},", f"IVF{nlist}_HNSW32,") if nlist >= 4096 else f


def train(factory: str, sample: np.ndarray, opq_niter: int):
    """faiss_build.train, with fewer OPQ iterations (FAISS's 50 take >10 minutes on 2 cores at 64 sub-spaces)."""
    import faiss

    index = faiss_build.new_index(factory, DIM)
    top = faiss.downcast_index(index)
    if isinstance(top, faiss.IndexPreTransform):
        opq = faiss.downcast_VectorTransform(top.chain.at(0))
        if isinstance(opq, faiss.OPQMatrix):
            opq.niter = opq_niter
    index.train(sample)
    return index


def build(src: Source, n: int, factory: str, chunk: int, shard: int, work: Path, train_n: int, opq_niter: int) -> tuple:
    t0 = time.perf_counter()
    sample = src.vectors(train_n, stream=10**9)  # a training sample from the same distribution
    trained = faiss_build.serialize(train(factory, sample, opq_niter))
    del sample
    t_train = time.perf_counter() - t0
    paths = []
    for s, s_start, s_len in chunks(n, shard):
        index = faiss_build.deserialize(trained)
        for _, start, size in chunks(s_len, chunk):
            g = s_start + start
            index.add_with_ids(src.vectors(size, stream=g // chunk), np.arange(g, g + size, dtype=np.int64))
        paths.append(work / f"shard-{s:05d}.faiss")
        import faiss

        faiss.write_index(index, str(paths[-1]))
        del index
    t_add = time.perf_counter() - t0 - t_train
    import faiss

    index = faiss.read_index(str(paths[0]))
    for p in paths[1:]:
        index.merge_from(faiss.read_index(str(p)), 0)
    return index, {
        "train_s": round(t_train, 1),
        "add_s": round(t_add, 1),
        "merge_s": round(time.perf_counter() - t0 - t_train - t_add, 1),
        "shards": len(paths),
    }


def exact_topk(src: Source, n: int, chunk: int, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product top-k ids over the streamed chunks."""
    import faiss

    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for _, start, size in chunks(n, chunk):
        d, i = faiss.knn(queries, src.vectors(size, stream=start // chunk), k, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(D=d, I=i + start)
    heap.finalize()
    return heap.I


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def tune(index, queries, truth, target: float) -> tuple[int | None, list]:
    curve = []
    ivf = __import__("faiss").extract_index_ivf(index)
    for p in [p for p in NPROBES if p <= ivf.nlist]:
        faiss_build.set_nprobe(index, p)
        r = recall(index.search(queries, 10)[1], truth)
        curve.append((p, round(r, 4)))
        if r >= target:
            return p, curve
    return None, curve


def code_bytes(factory: str) -> int:
    if "SQ8" in factory:
        return DIM + 8
    if "SQfp16" in factory:
        return 2 * DIM + 8
    return int(faiss_build.bytes_per_vector(factory.replace("_HNSW32", ""), DIM))


def evaluate(src: Source, args, factory: str, nlist: int, budget: float, tuning, evaluation) -> dict:
    """Build `factory`, choose nprobe on the tuning queries, measure recall@10 and QPS on the evaluation ones."""
    base = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pixsearch-scale-"))
    work = base / factory.replace(",", "_")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    index, times = build(
        src, args.n, factory, args.chunk, args.shard, work, min(args.n, max(100_000, 39 * nlist)), args.opq_niter
    )
    build_s = time.perf_counter() - t0
    index_mib = round(sum(p.stat().st_size for p in work.glob("shard-*.faiss")) / 2**20, 1)
    shutil.rmtree(work if args.work else base, ignore_errors=True)
    nprobe, curve = tune(index, *tuning, args.target)
    faiss_build.set_nprobe(index, nprobe or curve[-1][0])
    queries, truth = evaluation
    t2 = time.perf_counter()
    found = index.search(queries, 10)[1]
    qps_batched = len(queries) / (time.perf_counter() - t2)
    one = queries[: min(1000, len(queries))]
    t3 = time.perf_counter()
    for q in one:
        index.search(q[None], 10)
    qps_single = len(one) / (time.perf_counter() - t3)
    return {
        "n": args.n,
        "dim": DIM,
        "factory": factory,
        "budget_mb": round(budget, 1),
        "nprobe": nprobe,
        "nprobe_curve": curve,
        "recall_at_10": round(recall(found, truth), 4),
        "target": args.target,
        "reached": nprobe is not None,
        "build_s": round(build_s, 1),
        **times,
        "index_mib": index_mib,
        "bytes_per_vector": code_bytes(factory),
        "peak_rss_mib_so_far": round(peak_rss_mib()),
        "qps_batched": round(qps_batched),
        "qps_one_by_one": round(qps_single),
        "queries": len(queries),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--budget-mb", type=float, default=None, help="index memory budget; default n x 72 bytes")
    ap.add_argument("--chunk", type=int, default=50_000, help="vectors generated at a time")
    ap.add_argument("--shard", type=int, default=1_000_000, help="vectors per on-disk shard")
    ap.add_argument("--queries", type=int, default=10_000, help="evaluation queries (recall, QPS)")
    ap.add_argument("--tune-queries", type=int, default=1_000, help="held-out queries that choose nprobe")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--opq-niter", type=int, default=4, help="OPQ training iterations (FAISS default 50)")
    ap.add_argument("--work", default=None, help="directory for shard files (default: a temporary one)")
    ap.add_argument(
        "--factory",
        default=None,
        help="build this FAISS factory instead of the budget's choice (no ladder), e.g. IVF4096_HNSW32,SQ8",
    )
    ap.add_argument(
        "--no-escalate",
        dest="escalate",
        action="store_false",
        help="do not try IVF,SQ8 when the budget's PQ factory misses the target",
    )
    args = ap.parse_args()
    budget = args.budget_mb or args.n * 72 / 2**20
    factory = args.factory or factory_for(args.n, budget)
    nlist = int(factory.split("IVF")[1].split("_")[0].split(",")[0])
    escalate = args.escalate and "PQ" in factory and not args.factory
    ladder = [factory] + ([factory.split(",")[1] + ",SQ8"] if escalate else [])
    src = Source()
    tune_q, eval_q = src.vectors(args.tune_queries, stream=2**31 - 1), src.vectors(args.queries, stream=2**31)
    t1 = time.perf_counter()
    tune_truth = exact_topk(src, args.n, args.chunk, tune_q, 10)
    eval_truth = exact_topk(src, args.n, args.chunk, eval_q, 10)
    exact_s = round(time.perf_counter() - t1, 1)
    tried = []
    for f in ladder:
        tried.append(evaluate(src, args, f, nlist, budget, (tune_q, tune_truth), (eval_q, eval_truth)))
        r = tried[-1]
        print(
            f"{r['n']:,} x {DIM}: {f} ({r['bytes_per_vector']} bytes/vector; shards on disk {r['index_mib']} MiB), "
            f"built in {r['build_s']}s (train {r['train_s']}s, add {r['add_s']}s, merge {r['merge_s']}s); "
            f"nprobe {r['nprobe']} chosen on {args.tune_queries} held-out queries (curve {r['nprobe_curve']}); "
            f"recall@10 vs exact on {len(eval_q)} queries {r['recall_at_10']} "
            f"({'reaches' if r['reached'] else 'misses'} {args.target}); QPS batched {r['qps_batched']}, "
            f"one by one {r['qps_one_by_one']}",
            flush=True,
        )
        if r["reached"]:
            break
    ok = next((r for r in tried if r["reached"]), None)
    verdict = (
        f"target recall@10 {args.target} reached by {ok['factory']} at {ok['bytes_per_vector']} bytes/vector "
        f"({ok['index_mib']} MiB for {args.n:,})"
        if ok
        else f"target recall@10 {args.target} not reached by {[r['factory'] for r in tried]}: needs more than "
        f"{tried[-1]['bytes_per_vector']} bytes/vector (IVF,Flat: {DIM * 4 + 8})"
    )
    print(f"{verdict}; exact ground truth {exact_s}s; peak RSS {round(peak_rss_mib())} MiB")
    print(
        json.dumps(
            {
                "n": args.n,
                "tried": tried,
                "verdict": verdict,
                "exact_gt_s": exact_s,
                "peak_rss_mib": round(peak_rss_mib()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

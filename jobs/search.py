"""`pixsearch search`: serve a published index (HTTP, optionally on Ray actors) and query it from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import sys

NAME = "search"
HELP = "serve a published index over HTTP (in-process or Ray shard groups) and send queries to it"
DESCRIPTION = """Serve and query the sharded search service.

  pixsearch search serve --index out/indices/demo --host 127.0.0.1 --port 8080
  pixsearch search serve --index s3://bucket/indices/demo --ray --groups 2 --replicas 2
  pixsearch search query --index out/indices/demo --text "who built the violin" -k 5
  pixsearch search query --url http://127.0.0.1:8080 --image photo.jpg --box 10,20,200,240
  pixsearch search query --url http://127.0.0.1:8080 --image photo.jpg --mask mask.png
  pixsearch search serve --retriever cragmm cragmm.url=http://gpu-box:8090/search --port 8080

The backend comes from the retriever factory (pixsearch_core/retrieval/backends.py): --index URI|none|URL is the
shorthand, --retriever KIND (index, http, cragmm, replay, none) takes its settings as trailing key=value overrides
of the retriever config (uri=..., crop.component=all, cragmm.url=..., backend.kind=index ...).
`query` prints one JSON line per Evidence (doc_id, title, text, score, index, meta)."""

log = logging.getLogger("pixsearch.search")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from pixsearch_core.retrieval.backends import KINDS
    from pixsearch_core.retrieval.crop import COMPONENTS

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("serve", help="serve the HTTP API (POST /v1/search, GET /healthz, GET /v1/index-version)")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--index", help="index URI (.../indices/<name> follows CURRENT) or a version dir")
    which.add_argument("--retriever", choices=KINDS, help="a retriever kind, configured by trailing key=value")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--ray", action="store_true", help="hold the shards in Ray actors (groups x replicas)")
    s.add_argument("--groups", type=int, default=1)
    s.add_argument("--replicas", type=int, default=1)
    s.add_argument("--actor-cpus", type=float, default=0.25, help="CPUs per actor (fractional on small machines)")
    s.add_argument(
        "--ray-address",
        help="a Ray cluster to join (auto, ray://head:10001); default: $RAY_ADDRESS, else a local Ray on 127.0.0.1",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=32,
        help="connections served at once; more are answered 503 with Retry-After (default 32)",
    )
    s.add_argument(
        "--read-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may send nothing before it is closed (default 10)",
    )
    s.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        help="seconds a whole request (line, headers, body) may take to arrive; else 408 (default 30)",
    )
    s.add_argument(
        "--batch-window-ms",
        type=float,
        default=5.0,
        help="requests that arrive together share one search call: how long (ms, 0..1000) a batch may wait for "
        "requests still being read, or for the clients it just answered; a lone request never waits. 8 "
        "closed-loop clients reached 3.0-3.4x one client's rate at 5 ms, 2.6-2.7x at 2 ms (default 5)",
    )
    s.add_argument(
        "--max-batch-queries",
        type=int,
        default=256,
        help="most queries in one batched search call; a larger single request is searched alone (default 256)",
    )
    s.add_argument(
        "--search-threads",
        type=int,
        default=1,
        help="batches searched at once, each on its own thread (1..64): with many concurrent clients, 2 on a "
        "2-core machine overlaps one batch's search with the next one's network and parsing time, and one "
        "client is served as with 1; keep --encoder-threads and --faiss-threads at 1 then (default 1)",
    )
    s.add_argument(
        "--faiss-threads",
        type=int,
        default=1,
        help="FAISS OpenMP threads of this server process (0: FAISS's default, $OMP_NUM_THREADS or one per core); "
        "small batches gain little from more, and the HTTP threads need a core (default 1)",
    )
    s.add_argument(
        "--encoder-threads",
        type=int,
        default=1,
        help="torch threads of the query encoders in this server process (0: torch's default, one per core); "
        "one query gains little from more, and under load more threads wait on each other (default 1)",
    )
    s.add_argument(
        "--encoder-bf16-min-batch",
        type=int,
        default=0,
        metavar="N",
        help="text-encoder passes of N or more queries run in bf16 on a CPU with AMX / AVX512-BF16 (batched "
        "searches ~2.7x faster; vectors within cosine 0.9999 of fp32); 0 = always fp32 (default)",
    )
    q = sub.add_parser("query", help="send one query and print its Evidence as JSON lines")
    where = q.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", help="search a published index in-process")
    where.add_argument("--url", help="search a running service, e.g. http://127.0.0.1:8080")
    where.add_argument("--retriever", choices=KINDS, help="a retriever kind, configured by trailing key=value")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--text")
    what.add_argument("--image", help="an image file (whole image, or a region with --box/--mask)")
    region = q.add_mutually_exclusive_group()
    region.add_argument("--box", help="x0,y0,x1,y1 (pixels, exclusive right/bottom): search this region")
    region.add_argument("--mask", help="a PNG mask of the image's size (nonzero = inside): search this region")
    q.add_argument("-k", type=int, default=5, help="passages to return (default 5)")
    q.add_argument("--timeout", type=float, default=60.0, help="seconds per search (default 60)")
    for a in (s, q):
        a.add_argument("--cache-dir", default="~/.cache/pixsearch")
        a.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
        a.add_argument(
            "--region-padding",
            type=float,
            help="region queries: grow the mask's box by this share per side (default 0.1)",
        )
        a.add_argument(
            "--region-background",
            type=_rgb,
            metavar="R,G,B",
            help="region queries: paint pixels outside the mask this colour (default: keep them)",
        )
        a.add_argument(
            "--region-component",
            choices=COMPONENTS,
            help="region queries: crop to the mask's largest piece (default) or all its pixels",
        )
        a.add_argument(
            "--region-snap",
            type=float,
            metavar="SHARE",
            help="region queries: snap the mask to the image's colour segments it covers at least SHARE of "
            "(0-1, e.g. 0.3; default: use the mask as it is)",
        )
        a.add_argument("overrides", nargs="*", help="retriever config key=value (crop.padding=0.2, cragmm.url=...)")


def _config(args):
    """The retriever config of the command line: the --index/--url/--retriever choice, the --region-* flags (as
    crop.* settings) and the trailing overrides; a setting given twice is an error naming both."""
    from pixsearch_core.config import ConfigError, validate_config
    from pixsearch_core.retrieval.backends import RetrieverConfig, shorthand
    from pixsearch_core.retrieval.crop import RegionCrop

    base = (
        shorthand(args.index)
        if args.index
        else {"kind": "http", "uri": args.url}
        if getattr(args, "url", None)
        else {"kind": args.retriever}
    )
    flags = {f"crop.{name}": getattr(args, f"region_{name}") for name in RegionCrop.model_fields}  # --region-<field>
    flags = {key: value for key, value in flags.items() if value is not None}
    twice = sorted(key for key in flags if any(o.partition("=")[0].strip() == key for o in args.overrides))
    if twice:
        raise ConfigError(
            "pixsearch search", [f"{key} is set by both --region-{key[5:]} and {key}=...; give one" for key in twice]
        )
    base = {**base, "cache_dir": args.cache_dir, **({"timeout": args.timeout} if "timeout" in args else {})}
    return validate_config(
        RetrieverConfig,
        base,
        "pixsearch search",
        [f"{k}={json.dumps(v)}" for k, v in flags.items()] + list(args.overrides),
    )


def _searcher(args):
    from pixsearch_core.retrieval.backends import make_retriever
    from pixsearch_core.storage import ObjectStore, StorageConfig

    return make_retriever(_config(args), ObjectStore(StorageConfig(endpoint_url=args.endpoint_url)))


def _rgb(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and 0 <= int(p) <= 255 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not R,G,B with each in 0..255 (e.g. 255,255,255)")
    return tuple(int(p) for p in parts)


def _query(args):
    import numpy as np
    from PIL import Image

    from pixsearch_core.masks import png_to_mask
    from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery

    if args.text is not None:
        return TextQuery(args.text)
    image = Image.open(args.image).convert("RGB")
    if args.box:
        x0, y0, x1, y1 = (int(v) for v in args.box.split(","))
        mask = np.zeros((image.height, image.width), bool)
        mask[y0:y1, x0:x1] = True
        return RegionQuery(image, mask)
    if args.mask:
        with open(args.mask, "rb") as f:
            return RegionQuery(image, png_to_mask(f.read()))
    return ImageQuery(image)


def _serve(args) -> int:
    from indexing.embedders import set_bf16_min_batch
    from indexing.searcher import set_encoder_threads, set_faiss_threads
    from indexing.serving.http_server import SearchHTTPServer

    set_faiss_threads(args.faiss_threads)  # checks the value before anything loads (and sets this thread's)
    set_encoder_threads(args.encoder_threads)  # torch's setting is process-wide
    set_bf16_min_batch(args.encoder_bf16_min_batch)  # so is this one; refused on a CPU without native bf16
    started = False
    if args.ray:
        from indexing.serving.ray_service import RaySearchRouter
        from pixsearch_core.engines import RayConfig, init_ray
        from pixsearch_core.storage import StorageConfig

        cfg = _config(args)
        if cfg.kind != "index":
            raise ValueError(f"--ray serves a published index (kind 'index'); the retriever is kind {cfg.kind!r}")
        started = init_ray(RayConfig(address=args.ray_address))
        searcher = RaySearchRouter(
            cfg.uri,
            groups=args.groups,
            replicas=args.replicas,
            num_cpus=args.actor_cpus,
            storage=StorageConfig(endpoint_url=args.endpoint_url),
            cache_dir=cfg.cache_dir,
            crop=cfg.crop,
        )
    else:
        searcher = _searcher(args)
    server = SearchHTTPServer(
        (args.host, args.port),
        searcher,
        workers=args.workers,
        read_timeout=args.read_timeout,
        request_timeout=args.request_timeout,
        batch_window_ms=args.batch_window_ms,
        max_batch_queries=args.max_batch_queries,
        search_thread_init=lambda: set_faiss_threads(args.faiss_threads),  # OpenMP settings are per thread
        search_threads=args.search_threads,
    )
    _stop_on_sigterm()  # after Ray's init, which installs its own (stack-dumping) handler
    log.info("serving %s on %s", searcher.index_version, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
        from pixsearch_core.engines import shutdown_ray

        shutdown_ray(started)
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd, Ctrl-C's sibling) ends `serve_forever` like Ctrl-C: a clean shutdown."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def run(args: argparse.Namespace) -> int:
    if args.action == "serve":
        return _serve(args)
    from pixsearch_core.retrieval.client import SearchClient, SearchError

    try:
        query = _query(args)
        searcher = _searcher(args)
        if not isinstance(searcher, SearchClient):  # in-process backends get the same deadline
            searcher = SearchClient.connect(searcher, timeout=args.timeout, retries=0)
        with searcher as client:
            hits = client.search(query, k=args.k)
    except (SearchError, ValueError, OSError) as e:
        log.error("%s", e)
        return 2
    for e in hits:
        sys.stdout.write(json.dumps(e.to_dict()) + "\n")
    return 0

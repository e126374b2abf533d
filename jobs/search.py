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

`query` prints one JSON line per Evidence (doc_id, title, text, score, index, meta)."""

log = logging.getLogger("pixsearch.search")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("serve", help="serve the HTTP API (POST /v1/search, GET /healthz, GET /v1/index-version)")
    s.add_argument("--index", required=True, help="index URI (.../indices/<name> follows CURRENT) or a version dir")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--ray", action="store_true", help="hold the shards in Ray actors (groups x replicas)")
    s.add_argument("--groups", type=int, default=1)
    s.add_argument("--replicas", type=int, default=1)
    s.add_argument("--actor-cpus", type=float, default=0.25, help="CPUs per actor (fractional on small machines)")
    s.add_argument("--ray-address", help="a Ray cluster to join (auto, ray://head:10001); default: $RAY_ADDRESS, "
                   "else a local Ray on 127.0.0.1")
    q = sub.add_parser("query", help="send one query and print its Evidence as JSON lines")
    where = q.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", help="search a published index in-process")
    where.add_argument("--url", help="search a running service, e.g. http://127.0.0.1:8080")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--text")
    what.add_argument("--image", help="an image file (whole image, or a region with --box/--mask)")
    region = q.add_mutually_exclusive_group()
    region.add_argument("--box", help="x0,y0,x1,y1 (pixels, exclusive right/bottom): search this region")
    region.add_argument("--mask", help="a PNG mask of the image's size (nonzero = inside): search this region")
    q.add_argument("-k", type=int, default=5)
    q.add_argument("--timeout", type=float, default=60.0)
    for a in (s, q):
        a.add_argument("--cache-dir", default="~/.cache/pixsearch")
        a.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
        a.add_argument("--region-padding", type=float, default=0.1,
                       help="region queries: grow the mask's box by this share per side (default 0.1)")
        a.add_argument("--region-background", type=_rgb, default=None, metavar="R,G,B",
                       help="region queries: paint pixels outside the mask this colour (default: keep them)")


def _searcher(args):
    from indexing.searcher import ShardedSearcher
    from pixsearch_core.storage import StorageConfig

    return ShardedSearcher(args.index, storage=StorageConfig(endpoint_url=args.endpoint_url), cache_dir=args.cache_dir,
                           region_padding=args.region_padding, region_background=args.region_background)


def _rgb(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and 0 <= int(p) <= 255 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not R,G,B with each in 0..255 (e.g. 255,255,255)")
    return tuple(int(p) for p in parts)


def _query(args):
    import numpy as np
    from PIL import Image

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
        return RegionQuery(image, np.asarray(Image.open(args.mask).convert("L")) > 0)
    return ImageQuery(image)


def _serve(args) -> int:
    from indexing.serving.http_server import SearchHTTPServer

    started = False
    if args.ray:
        from indexing.serving.ray_service import RaySearchRouter
        from pixsearch_core.engines import RayConfig, init_ray
        from pixsearch_core.storage import StorageConfig

        started = init_ray(RayConfig(address=args.ray_address))
        searcher = RaySearchRouter(args.index, groups=args.groups, replicas=args.replicas, num_cpus=args.actor_cpus,
                                   storage=StorageConfig(endpoint_url=args.endpoint_url), cache_dir=args.cache_dir,
                                   region_padding=args.region_padding, region_background=args.region_background)
    else:
        searcher = _searcher(args)
    server = SearchHTTPServer((args.host, args.port), searcher)
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
        with SearchClient.connect(args.url or _searcher(args), timeout=args.timeout) as client:
            hits = client.search(query, k=args.k)
    except (SearchError, ValueError, OSError) as e:
        log.error("%s", e)
        return 2
    for e in hits:
        sys.stdout.write(json.dumps(e.to_dict()) + "\n")
    return 0

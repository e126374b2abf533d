"""`pixsearch eval view`: browse runs' trajectories, masks and evidence in a browser (a static site; optional server)."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """examples:
  pixsearch eval view out/demo/runs/synthcrag-full out/demo/runs/synthcrag-whole_image --out out/view
  pixsearch eval view out/demo/runs/synthcrag-full --out out/view --serve --port 8765
Open <out>/index.html in a browser (no server or network needed), or with --serve http://127.0.0.1:PORT/.
Views are linkable: #table?verdict=wrong, #sample?run=0&k=3, #compare?a=0&b=1&only=diff."""


def add(sub) -> None:
    p = sub.add_parser(
        "view",
        help="trace viewer over run directories: a static site, optionally served",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or URIs (<output>/runs/<run_id>)")
    p.add_argument("--out", default="eval-view", help="local folder for the site (default: eval-view)")
    p.add_argument("--storage", help="storage config (conf/storage/*.yaml) for s3:// runs")
    p.add_argument("--serve", action="store_true", help="serve the folder over HTTP until interrupted")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to serve on (default 8765; 0 picks a free one)")
    p.set_defaults(_action=_view)


def _view(args: argparse.Namespace) -> int:
    from pixsearch_core.config import load_config
    from pixsearch_core.evaluation.viewer import build_viewer
    from pixsearch_core.storage import ObjectStore, StorageConfig

    store = ObjectStore(load_config(StorageConfig, args.storage) if args.storage else StorageConfig())
    result = build_viewer(args.runs, args.out, store)
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    if args.serve:
        import functools
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        handler = functools.partial(SimpleHTTPRequestHandler, directory=args.out)
        with ThreadingHTTPServer((args.host, args.port), handler) as httpd:
            sys.stderr.write(f"serving {args.out} on http://{args.host}:{httpd.server_address[1]}/ (Ctrl-C stops)\n")
            httpd.serve_forever()
    return 0

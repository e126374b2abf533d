"""`pixsearch index`: build a sharded FAISS index on Spark (or sequentially), show it, verify it.

Also runnable as `spark-submit jobs/build_index.py build --config conf/index/demo.yaml [overrides]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

NAME = "index"
HELP = "build (Spark), inspect and verify sharded FAISS indices in local or S3 storage"
DESCRIPTION = """Build a text + image index from a corpus, publish it atomically, and inspect or verify it.

  pixsearch index build --config conf/index/demo.yaml output=s3://bucket storage=@conf/storage/local-s3.yaml
  pixsearch index build --config conf/index/demo.yaml runner=sequential spark.master=local[2]
  pixsearch index info out/indices/demo              # follows CURRENT; or a version directory
  pixsearch index verify out/indices/demo            # every shard checked against its sha256"""

log = logging.getLogger("pixsearch.index")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build and publish an index from a conf/index/*.yaml config")
    b.add_argument("--config", required=True, help="a conf/index/*.yaml file")
    b.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. output=s3://bucket runner=sequential")
    for action, text in (("info", "show shards, counts, encoders, factory and rejects"),
                         ("verify", "check every object of a published version against its sha256")):
        a = sub.add_parser(action, help=text)
        a.add_argument("uri", help="an index (.../indices/<name>, follows CURRENT), a version directory or manifest")
        a.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
        if action == "info":
            a.add_argument("--json", action="store_true", help="print the whole manifest as JSON")


def _store(args):
    from pixsearch_core.storage import ObjectStore, StorageConfig

    return ObjectStore(StorageConfig(endpoint_url=args.endpoint_url))


def run(args: argparse.Namespace) -> int:
    from indexing.manifest import describe, read_manifest, resolve, verify_manifest

    if args.action == "build":
        from indexing.build import build_index
        from indexing.config import IndexBuildConfig
        from pixsearch_core.config import load_config

        cfg = load_config(IndexBuildConfig, args.config, args.overrides)
        result = build_index(cfg)
        log.info("published %s", result["version_uri"])
        print(describe(result["manifest"]))
        return 0
    store = _store(args)
    version_uri = resolve(store, args.uri)
    manifest = read_manifest(store, version_uri)
    if args.action == "info":
        print(json.dumps(manifest, indent=2) if args.json else describe(manifest))
        return 0
    n = verify_manifest(store, version_uri, manifest)
    print(f"OK {version_uri}: {n} objects match their sha256")
    return 0


if __name__ == "__main__":  # spark-submit jobs/build_index.py build --config ...
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jobs.cli import main

    sys.exit(main([NAME, *sys.argv[1:]]))

"""`pixsearch index`: build a sharded FAISS index on Spark (or sequentially), show it, verify it.

Also runnable as `spark-submit jobs/index.py build --config conf/index/demo.yaml [overrides]`.
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
  pixsearch index build --config conf/index/demo.yaml engine=sequential      # or engine=spark spark.master=spark://head:7077
  pixsearch index embed --config conf/index/demo.yaml --out out/emb/demo   # embeddings only (parquet parts)
  pixsearch index build --config conf/index/demo.yaml sources='[{kind: embeddings, path: out/emb/demo/text}]'
  pixsearch index info out/indices/demo              # follows CURRENT; or a version directory
  pixsearch index verify out/indices/demo            # every shard checked against its sha256
  pixsearch index build --config conf/index/demo.yaml publish=false --result out/build.json   # build only
  pixsearch index publish out/indices/demo VERSION   # verify VERSION, then flip CURRENT to it
  pixsearch index prune out/indices/demo --keep 3    # delete all but the newest 3 versions (never CURRENT)"""

log = logging.getLogger("pixsearch.index")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build and publish an index from a conf/index/*.yaml config")
    b.add_argument("--config", required=True, help="a conf/index/*.yaml file")
    b.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. output=s3://bucket engine=sequential")
    b.add_argument("--result", help="also write {version, version_uri, index_uri, reused} as JSON to this URI")
    e = sub.add_parser("embed", help="stage and embed a corpus, write the embeddings as parquet parts")
    e.add_argument("--config", required=True, help="a conf/index/*.yaml file")
    e.add_argument("--out", required=True, help="where <text|image>/part-*.parquet and embeddings.json go")
    e.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    pub = sub.add_parser("publish", help="verify a built version, then flip the index's CURRENT to it")
    pub.add_argument("uri", help="the index (.../indices/<name>)")
    pub.add_argument("version", help="the version directory's name")
    pr = sub.add_parser("prune", help="delete all but the newest N versions (never the live one)")
    pr.add_argument("uri", help="the index (.../indices/<name>)")
    pr.add_argument("--keep", type=int, required=True, help="how many of the newest versions to keep (>= 1)")
    for a in (pub, pr):
        a.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
    for action, text in (
        ("info", "show shards, counts, encoders, factory and rejects"),
        ("verify", "check every object of a published version against its sha256"),
    ):
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

    if args.action in ("build", "embed"):
        from indexing.build import build_index, embed_corpus
        from indexing.config import IndexBuildConfig
        from pixsearch_core.config import load_config

        cfg = load_config(IndexBuildConfig, args.config, args.overrides)
        if args.action == "embed":
            print(json.dumps(embed_corpus(cfg, args.out)))
            return 0
        result = build_index(cfg)
        log.info("built %s (published: %s)", result["version_uri"], cfg.publish)
        if args.result:
            _write_result(cfg, result, args.result)
        print(describe(result["manifest"]))
        return 0
    store = _store(args)
    if args.action in ("publish", "prune"):
        return _versions_action(store, args)
    version_uri = resolve(store, args.uri)
    manifest = read_manifest(store, version_uri)
    if args.action == "info":
        print(json.dumps(manifest, indent=2) if args.json else describe(manifest))
        return 0
    n = verify_manifest(store, version_uri, manifest)
    print(f"OK {version_uri}: {n} objects match their sha256")
    return 0


def _write_result(cfg, result: dict, uri: str) -> None:
    from indexing.manifest import index_root
    from pixsearch_core.storage import ObjectStore

    out = {
        "version": result["manifest"]["version"],
        "version_uri": result["version_uri"],
        "index_uri": index_root(cfg.output, cfg.name),
        "reused": result["reused"],
        "published": cfg.publish,
    }
    ObjectStore(cfg.storage).put_bytes(uri, json.dumps(out, indent=2).encode())


def _versions_action(store, args) -> int:
    from indexing.versions import prune_versions, publish_version

    if args.action == "publish":
        print(f"published {publish_version(store, args.uri, args.version)}")
    else:
        print(json.dumps({"pruned": prune_versions(store, args.uri, args.keep)}))
    return 0


if __name__ == "__main__":  # spark-submit jobs/index.py build --config ...
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jobs.cli import main

    sys.exit(main([NAME, *sys.argv[1:]]))

"""`pixsearch store`: look at and move objects in the object store (local paths, file://, s3://)."""

from __future__ import annotations

import argparse
import sys

NAME = "store"
HELP = "list, copy, print or delete objects in local or S3 storage"
DESCRIPTION = """Object-store utilities over plain paths, file:// and s3:// (credentials from the AWS chain).

  pixsearch store ls s3://bucket/indices/demo --endpoint-url http://127.0.0.1:9000
  pixsearch store cp ./manifest.json s3://bucket/tmp/manifest.json
  pixsearch store cat s3://bucket/indices/demo/CURRENT
  pixsearch store clean s3://bucket/indices --older-than-s 3600   # what killed writes left: .tmp-* files,
                                                                   # incomplete multipart uploads
  pixsearch store mb s3://bucket --endpoint-url http://127.0.0.1:9000   # create a bucket"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["ls", "cp", "cat", "rm", "sha256", "clean", "mb"], help="what to do")
    p.add_argument("uris", nargs="+", help="URI(s): ls/cat/rm/sha256/clean/mb take one, cp takes SRC DST")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL)")
    p.add_argument("--region", help="S3 region")
    p.add_argument(
        "--older-than-s",
        type=float,
        default=None,
        help="clean: only what is older than this (default 3600: a write in progress is younger)",
    )


def run(args: argparse.Namespace) -> int:
    import hashlib

    from pixsearch_core.storage import ObjectStore, StorageConfig

    store = ObjectStore(StorageConfig(endpoint_url=args.endpoint_url, region=args.region))
    want = 2 if args.action == "cp" else 1
    if len(args.uris) != want:
        raise ValueError(f"store {args.action} takes {want} URI(s), got {len(args.uris)}: {args.uris}")
    uri = args.uris[0]
    if args.action == "ls":
        for u in store.list(uri):
            print(u)
    elif args.action == "cat":
        sys.stdout.buffer.write(store.get_bytes(uri))
    elif args.action == "rm":
        store.delete(uri)
    elif args.action == "clean":
        import json

        from pixsearch_core.storage import STALE_AFTER_S

        age = STALE_AFTER_S if args.older_than_s is None else args.older_than_s
        print(json.dumps(store.clean_incomplete(uri, age)))
    elif args.action == "mb":
        store.make_bucket(uri)
    elif args.action == "sha256":
        print(hashlib.sha256(store.get_bytes(uri)).hexdigest(), uri)
    else:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            local = store.get_file(uri, Path(tmp) / "obj")
            print(store.put_file(args.uris[1], local), args.uris[1])
    return 0

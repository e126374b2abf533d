"""`pixsearch lineage`: print what produced an artifact, down to the corpus (report -> runs -> checkpoint ->
training data -> index -> corpus)."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "lineage"
HELP = "print the chain of what produced a report, eval run, checkpoint export or index"
DESCRIPTION = """Follow an artifact's lineage records down to the corpus and print them.

  pixsearch lineage out/demo/report                      # a report: every run it tabulates, and below each run
  pixsearch lineage out/demo/runs/<run_id>               # an eval run: code, data, judge, checkpoint, index
  pixsearch lineage out/demo/store/ckpt/stage2/final     # a training export: data digests, base weights, stage 1
  pixsearch lineage out/demo/store/indices/synthcrag     # an index (its CURRENT version): encoders, corpus
  pixsearch lineage out/demo/report --json               # the same tree as JSON"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", help="a report, run, checkpoint export, index or index version (path or s3:// URI)")
    p.add_argument("--json", action="store_true", help="print the tree as JSON instead of text")
    p.add_argument("--storage", help="storage config (conf/storage/*.yaml) for s3:// artifacts")


def run(args: argparse.Namespace) -> int:
    from pixsearch_core import lineage
    from pixsearch_core.config import load_config
    from pixsearch_core.storage import ObjectStore, StorageConfig

    store = ObjectStore(load_config(StorageConfig, args.storage) if args.storage else StorageConfig())
    tree = lineage.chain(store, args.uri)
    out = json.dumps(tree, indent=2, sort_keys=True, default=str) if args.json else "\n".join(lineage.render(tree))
    sys.stdout.write(out + "\n")
    return 0

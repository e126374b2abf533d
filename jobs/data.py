"""`pixsearch data`: training-data construction. `data build-stage2` builds the stage-2 search-interleaved
trajectories from benchmark training splits (paper §4.3, Figure 3)."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "data"
HELP = "build training data: stage-2 search-interleaved trajectories (data build-stage2)"
DESCRIPTION = """Training-data construction.

  pixsearch data build-stage2 --config conf/data/stage2-synthcrag.yaml          # offline, rule-based stand-in
  pixsearch data build-stage2 --config conf/data/stage2-paper.yaml llm.model=gpt-4.1 engine=ray

Re-running the same command resumes (finished parts are kept; cached LLM replies cost nothing). Prints the
manifest (funnel, usage, cost) as one JSON line."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    b = sub.add_parser(
        "build-stage2",
        help="stage-2 trajectories: select, decompose, generate, refine, assign, search for real, verify",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--config", required=True, help="conf/data/*.yaml")
    b.add_argument("overrides", nargs="*", help="dotted key=value overrides (llm.base_url=..., engine=ray)")


def run(args: argparse.Namespace) -> int:
    from pixsearch_core.config import load_config
    from pixsearch_core.stage2.build import build_stage2
    from pixsearch_core.stage2.config import Stage2Config

    cfg = load_config(Stage2Config, args.config, args.overrides)
    manifest = build_stage2(cfg)
    sys.stdout.write(json.dumps(manifest, sort_keys=True) + "\n")
    return 0

"""`pixsearch eval report`: Markdown/HTML tables shaped like the paper's and figures, from run records."""

from __future__ import annotations

import argparse
import json
import sys


def add(sub) -> None:
    p = sub.add_parser(
        "report",
        help="Markdown/HTML tables (paper Tables 1, 6, 7) and figures from run records",
        description="Writes <out>/report.md and report.html: Table 1 (truthfulness, accuracy, missing, hallucination "
        "per CRAG group), search behaviour and mask quality, and, given full, whole_image and no_search runs, the "
        "paper's ordering with each margin's paired test (questions won / lost, exact McNemar p) and whether it "
        "holds with both margins significant at p < 0.05; per question type, target documents retrieved, "
        "abstention, Tables 6-7 when such runs are given; Figure-4 plots and mask overlays.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (<output>/runs/<run_id>)")
    p.add_argument("--out", default="eval-report", help="output directory or URI (default: eval-report)")
    p.add_argument("--overlays", type=int, default=4, help="mask overlays per run (default 4)")
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="put runs of one benchmark in a table even if their data or judge differ (refused otherwise)",
    )
    p.add_argument(
        "--storage",
        metavar="YAML",
        help="storage settings: a conf/storage/*.yaml file or an inline "
        "mapping, e.g. '{endpoint_url: http://127.0.0.1:9000, addressing_style: path}'",
    )
    p.set_defaults(_action=_report)


def storage_arg(text: str | None):
    """--storage: a YAML file or an inline YAML mapping, validated as StorageConfig (None = the defaults)."""
    import os

    import yaml

    from pixsearch_core.config import load_config, validate_config
    from pixsearch_core.storage import StorageConfig

    if not text:
        return StorageConfig()
    if os.path.isfile(text):
        return load_config(StorageConfig, text)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"--storage {text!r} is neither a file nor a YAML mapping of StorageConfig fields")
    return validate_config(StorageConfig, data, source="--storage")


def _report(args: argparse.Namespace) -> int:
    from pixsearch_core.evaluation.report import write_report
    from pixsearch_core.storage import ObjectStore

    paths = write_report(
        args.runs,
        args.out,
        ObjectStore(storage_arg(args.storage)),
        overlays_per_run=args.overlays,
        allow_mixed=args.allow_mixed,
    )
    sys.stdout.write(json.dumps(paths, sort_keys=True) + "\n")
    return 0

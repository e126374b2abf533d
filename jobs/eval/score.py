"""`pixsearch eval score`: score a predictions file against gold data in the benchmark's official layout."""

from __future__ import annotations

import argparse
import json
import sys

from jobs.eval import DESCRIPTION


def add(sub) -> None:
    from pixsearch_core.registry import names

    p = sub.add_parser(
        "score",
        help="score a predictions file; print the aggregate metrics as JSON",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--benchmark",
        required=True,
        choices=names("benchmark"),
        metavar="NAME",
        help=f"one of: {', '.join(names('benchmark'))}",
    )
    p.add_argument("--gold", required=True, help="gold data in the official layout: a directory, file or s3:// URI")
    p.add_argument(
        "--predictions",
        required=True,
        help='JSONL of {"id", "prediction"} lines, or for mask benchmarks a directory of <id>.png',
    )
    p.add_argument("--split", help="gold split (default: the benchmark's evaluation split)")
    p.add_argument(
        "--judge",
        default="none",
        help="CRAG-MM: 'none' (exact match only) or an OpenAI-compatible "
        "base URL; model and key from PIXSEARCH_JUDGE_MODEL / PIXSEARCH_JUDGE_API_KEY",
    )
    p.add_argument("--judge-model", help="CRAG-MM judge model (default: $PIXSEARCH_JUDGE_MODEL or gpt-4o)")
    p.add_argument("--judge-prompt", help="file with the judge's system prompt (e.g. the official one)")
    p.add_argument("--judge-cache", help="verdict cache directory (default ~/.cache/pixsearch/judge)")
    p.add_argument(
        "--miou-mode",
        choices=["mmseg", "all_classes"],
        default="mmseg",
        help="ade20k / coco_stuff: mmseg nanmean (default) or mean over all classes (LISA)",
    )
    p.add_argument("--per-example", metavar="OUT", help="also write per-example scores (JSONL) here")
    p.set_defaults(_action=_score)


def _score(args: argparse.Namespace) -> int:
    from pixsearch_core.benchmarks.evaluate import evaluate
    from pixsearch_core.registry import get

    options = {}
    if args.benchmark == "crag_mm" and args.judge != "none":
        from pixsearch_core.metrics.judge import JudgeConfig, LLMJudge

        options["judge"] = LLMJudge(
            JudgeConfig(
                base_url=args.judge, model=args.judge_model, prompt_file=args.judge_prompt, cache_dir=args.judge_cache
            )
        )
    if args.benchmark in ("ade20k", "coco_stuff"):
        options["miou_mode"] = args.miou_mode
    bench = get("benchmark", args.benchmark)(**options)
    result = evaluate(bench, args.gold, args.predictions, args.split, args.per_example)
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0

"""`pixsearch eval run`: a model over a benchmark on Ray (or in this process); resumable per-sample records."""

from __future__ import annotations

import argparse
import json
import sys

RUN_EPILOG = """examples:
  pixsearch eval run --config conf/eval/demo.yaml --benchmark synthcrag --data out/synthcrag --model tiny \\
      --index out/index/demo --mode full
  pixsearch eval run --benchmark synthcrag --data out/synthcrag --model tiny --index none engine=sequential
  RAY_ADDRESS=auto pixsearch eval run --config conf/eval/cluster-13b.yaml --benchmark crag_mm \\
      --data s3://b/crag-mm --model s3://b/ckpt/stage2 --index s3://b/indices/wiki --mode budget2 ray.num_replicas=16
modes: full, no_search, text_question, whole_image, no_region, no_text, no_image, only_region, only_text,
only_image, budget<N>. --model oracle answers with the gold answers (a smoke test of the pipeline).
A re-run with the same run id resumes: samples with a record are skipped."""


def add(sub) -> None:
    p = sub.add_parser("run", help="run a model over a benchmark on Ray (or engine=sequential); resumable records",
                       epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/eval/demo.yaml", help="run config (conf/eval/*.yaml)")
    p.add_argument("--benchmark", required=True, help="registered benchmark name (e.g. crag_mm, synthcrag)")
    p.add_argument("--data", required=True, help="gold data: directory, file or s3:// URI")
    p.add_argument("--model", required=True, help="registered model (tiny | mini | 13b), a checkpoint URI, or oracle")
    p.add_argument("--index", required=True, help="index URI (indices/<name>) or 'none'")
    p.add_argument("--mode", default="full", help="decode mode (see below); default full")
    p.add_argument("--run-id", help="default: <benchmark>-<model>-<mode>-<config hash>")
    p.add_argument("--out", help="output root (overrides the config's `output`)")
    p.add_argument("--ray-address", help="Ray cluster address (overrides ray.address), e.g. auto or ray://h:10001")
    p.add_argument("--sequential", action="store_true", help="deprecated: use the override engine=sequential")
    p.add_argument("overrides", nargs="*", help="dotted key=value config overrides (ray.num_replicas=4)")
    p.set_defaults(_action=_run)


def _run(args: argparse.Namespace) -> int:
    from pixsearch_core.config import load_config
    from pixsearch_core.evaluation.config import EvalRunConfig
    from pixsearch_core.evaluation.driver import RunRequest, run_eval

    overrides = list(args.overrides)
    overrides += [f"output={args.out}"] if args.out else []
    overrides += [f"ray.address={args.ray_address}"] if args.ray_address else []
    if args.sequential:
        from pixsearch_core.engines import deprecated

        deprecated("eval run --sequential", "the override engine=sequential (or `engine: sequential` in the config)")
        overrides.append("engine=sequential")
    cfg = load_config(EvalRunConfig, args.config, overrides)
    summary = run_eval(cfg, RunRequest(args.benchmark, args.data, args.model, args.index, args.mode,
                                       args.run_id))
    sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    return 0

"""`pixsearch eval run`: a model over a benchmark on Ray (or in this process); resumable per-sample records."""

from __future__ import annotations

import argparse
import json
import logging
import sys

log = logging.getLogger("pixsearch.eval")

EX_TEMPFAIL = 75  # another driver holds the run (or took it over): try again later

RUN_EPILOG = """examples:
  pixsearch eval run --config conf/eval/demo.yaml --benchmark synthcrag --data out/synthcrag --model tiny \\
      --index out/index/demo --mode full
  pixsearch eval run --benchmark synthcrag --data out/synthcrag --model tiny --index none engine=sequential
  RAY_ADDRESS=auto pixsearch eval run --config conf/eval/cluster-13b.yaml --benchmark crag_mm \\
      --data s3://b/crag-mm --model s3://b/ckpt/stage2 --index s3://b/indices/wiki --mode budget2 ray.num_replicas=16
  pixsearch eval run --benchmark crag_mm --data gold/ --model tiny --retriever cragmm \\
      retriever.cragmm.url=http://gpu-box:8090/search engine=sequential
  pixsearch eval run --benchmark crag_mm --data gold/ --model tiny --index none decode=@conf/decode/no_search.yaml
modes: {modes} (pixsearch_core/decoding/options.py). Without --mode the config's decode
section decides (default full); --mode and a decode section that disagree are refused, naming both.
--index URI|none|http://... is the retriever shorthand; --retriever KIND takes its settings from retriever.*.
--model oracle answers with the gold answers (a smoke test of the pipeline).
Segmentation benchmarks (refcoco, refcoco+, refcocog, ade20k, coco_stuff) run the model's masks (no --index, no
--mode): pixsearch eval run --benchmark refcoco --data data/refer_seg --model tiny split=val
A re-run with the same run id resumes: answered samples are skipped, failed ones are retried (max_attempts).
One driver per run id: while another live driver holds the run, this exits 75 (try again later)."""


class _Help(argparse.RawDescriptionHelpFormatter):
    """Fills the mode names into the help text when it is printed (importing them costs torch's import time)."""

    def _format_text(self, text: str) -> str:
        if "{modes}" in text:
            from pixsearch_core.decoding.options import MODE_NAMES

            text = text.replace("{modes}", ", ".join(MODE_NAMES))
        return super()._format_text(text)


def add(sub) -> None:
    from pixsearch_core.retrieval.backends import KINDS

    p = sub.add_parser(
        "run",
        help="run a model over a benchmark on Ray (or engine=sequential); resumable records",
        epilog=RUN_EPILOG,
        formatter_class=_Help,
    )
    p.add_argument("--config", default="conf/eval/demo.yaml", help="run config (conf/eval/*.yaml)")
    p.add_argument("--benchmark", required=True, help="registered benchmark name (e.g. crag_mm, synthcrag)")
    p.add_argument("--data", required=True, help="gold data: directory, file or s3:// URI")
    p.add_argument("--model", required=True, help="registered model (tiny | mini | 13b), a checkpoint URI, or oracle")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--index",
        help="index URI (indices/<name>), a search service http(s):// URL, or 'none'; "
        "absent for segmentation benchmarks (refcoco, refcoco+, refcocog, ade20k, coco_stuff)",
    )
    which.add_argument(
        "--retriever",
        choices=KINDS,
        help="retriever kind; its settings are the config's retriever.* (uri, k, crop, cragmm.url)",
    )
    p.add_argument("--mode", help="decode mode (see below); default: the config's decode section (full)")
    p.add_argument("--run-id", help="default: <benchmark>-<model>-<mode>-<config hash>")
    p.add_argument("--out", help="output root (overrides the config's `output`)")
    p.add_argument("--ray-address", help="Ray cluster address (overrides ray.address), e.g. auto or ray://h:10001")
    p.add_argument("--sequential", action="store_true", help="deprecated: use the override engine=sequential")
    p.add_argument("overrides", nargs="*", help="dotted key=value config overrides (ray.num_replicas=4)")
    p.set_defaults(_action=_run)


def load(args: argparse.Namespace):
    """The run's config and request as `eval run` resolves them (every conflict between the command line and the
    config raised here, before any work): (EvalRunConfig, RunRequest)."""
    from pixsearch_core.config import load_config
    from pixsearch_core.evaluation.config import EvalRunConfig
    from pixsearch_core.evaluation.driver import RunRequest, resolve

    overrides = list(args.overrides)
    overrides += [f"output={args.out}"] if args.out else []
    overrides += [f"ray.address={args.ray_address}"] if args.ray_address else []
    if args.sequential:
        from pixsearch_core.engines import deprecated

        deprecated("eval run --sequential", "the override engine=sequential (or `engine: sequential` in the config)")
        overrides.append("engine=sequential")
    cfg = load_config(EvalRunConfig, args.config, overrides)
    req = RunRequest(
        args.benchmark, args.data, args.model, args.index, args.mode, args.run_id, retriever=args.retriever
    )
    cfg = resolve(cfg, req)
    cfg.decode_options(req.mode)
    return cfg, req


def _run(args: argparse.Namespace) -> int:
    from pixsearch_core.evaluation.driver import run_eval
    from pixsearch_core.evaluation.lease import LeaseHeld, LeaseLost

    cfg, req = load(args)
    try:
        summary = run_eval(cfg, req)
    except (LeaseHeld, LeaseLost) as e:
        log.error("%s", e)
        return EX_TEMPFAIL
    sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    return 0

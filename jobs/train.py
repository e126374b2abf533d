"""`pixsearch train`: stage 1 (segmentation mix) or stage 2 (search-interleaved SFT) under DeepSpeed.

Also the script handed to a launcher: `torchrun --nproc_per_node 8 jobs/train.py --stage 1 --config ...` or
`deepspeed jobs/train.py --stage 1 --config ...` (the launchers' --local_rank argument is accepted)."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "train"
HELP = "train stage 1 or stage 2 with DeepSpeed (resumes from the last checkpoint)"
DESCRIPTION = """Train PixSearch with DeepSpeed (ZeRO-2; bf16 on GPU, fp32 on CPU with gloo). Resumes from the
stage's LATEST checkpoint under `output`; exports the trainable weights to <output>/stage<N>/final.

  pixsearch train --stage 1 --config conf/train/tiny-synthcrag.yaml engine=torchrun torchrun.nproc_per_node=2
  pixsearch train --stage 2 --config conf/train/tiny-synthcrag.yaml stage2.max_steps=50
  torchrun --nnodes 2 --nproc_per_node 8 ... jobs/train.py --stage 1 --config conf/train/13b-paper.yaml"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", type=int, choices=[1, 2], required=True, help="which stage to train")
    p.add_argument("--config", required=True, help="conf/train/<name>.yaml")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides (e.g. stage1.lr=1e-4)")
    p.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="deprecated: use the overrides engine=torchrun torchrun.nproc_per_node=N",
    )
    p.add_argument("--stop-after", type=int, help="stop after this many optimizer steps (preemption tests)")
    p.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)  # deepspeed launcher


def _engine_overrides(args: argparse.Namespace) -> list[str]:
    """The deprecated --nproc N as the `engine` overrides it stands for."""
    if args.nproc is None:
        return []
    from pixsearch_core.engines import deprecated

    deprecated(
        f"train --nproc {args.nproc}",
        f"the overrides engine=torchrun torchrun.nproc_per_node={args.nproc}"
        if args.nproc > 1
        else "engine=sequential",
    )
    return ["engine=torchrun", f"torchrun.nproc_per_node={args.nproc}"] if args.nproc > 1 else ["engine=sequential"]


def run(args: argparse.Namespace) -> int:
    from pixsearch_core.config import load_config
    from pixsearch_core.engines import inside_launcher
    from pixsearch_core.training.config import TrainConfig

    overrides = [*args.overrides, *_engine_overrides(args)]
    cfg = load_config(TrainConfig, args.config, overrides)  # validated before any process starts
    if cfg.engine == "torchrun" and not inside_launcher():
        from pixsearch_core.engines import spawn_torchrun

        job = ["--stage", str(args.stage), "--config", args.config, *overrides]
        if args.stop_after:
            job += ["--stop-after", str(args.stop_after)]
        return spawn_torchrun(cfg.torchrun, "jobs/train.py", job)
    from pixsearch_core.training.trainer import train

    summary = train(cfg, args.stage, stop_after=args.stop_after)
    if summary.get("rank", 0) == 0:
        print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    from jobs.cli import setup_logging

    parser = argparse.ArgumentParser(
        prog="jobs/train.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    setup_logging()
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    sys.exit(main())

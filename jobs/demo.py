"""`pixsearch demo`: the whole system end to end on the embedded defaults (the job behind `make demo`)."""

from __future__ import annotations

import argparse
import json

NAME = "demo"
HELP = "end to end: SynthCRAG world -> Spark index -> DeepSpeed training -> Ray eval -> report (resumable)"
DESCRIPTION = """Run the whole pipeline on a generated knowledge world (SynthCRAG), each step as its own job:
world, index (Spark), retrieval check (region vs whole image vs text, gold masks), train (stage 1, 2), eval (one
Ray run per decode mode), report. Re-running skips what is finished.

  pixsearch demo                                   # conf/demo/cpu.yaml (DINOv2 SAM encoder, ~18 min), out/demo
  pixsearch demo --config conf/demo/gpu.yaml       # the larger preset for a GPU machine
  pixsearch demo --config conf/demo/dinov2.yaml    # the same encoder, box pre-training, longer training (~30 min)
  pixsearch demo --config conf/demo/scratch.yaml   # every part trained from scratch (~15 min; masks ~33% gIoU)
  pixsearch demo --config conf/demo/mini.yaml      # pretrained SmolLM2-135M + LiteMedSAM, LoRA (~2-3 h on CPU)
  pixsearch demo --config conf/demo/mini-dinov2.yaml  # the same LM with the DINOv2 SAM (~1.5 h on CPU)
  pixsearch demo --steps world,index,retrieval     # only some steps
  pixsearch demo output=/tmp/d world.seed=1
  pixsearch demo seeds=[0,1,2]                     # one demo per seed, then mean +/- spread: out/demo/seeds.md"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="conf/demo/cpu.yaml", help="demo preset (default: conf/demo/cpu.yaml)")
    p.add_argument("--steps", default=None, help="comma-separated subset of: world,index,retrieval,train,eval,report")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. output=/tmp/demo world.seed=1")


def run(args: argparse.Namespace) -> int:
    from pipelines.demo.config import DemoConfig
    from pipelines.demo.pipeline import STEPS, Demo
    from pipelines.demo.seeds import run_seeds
    from pixsearch_core.config import load_config

    cfg = load_config(DemoConfig, args.config, args.overrides)
    steps = tuple(s.strip() for s in args.steps.split(",")) if args.steps else STEPS
    results = run_seeds(cfg, steps) if cfg.seeds else Demo(cfg).run(steps)
    print(json.dumps(results, indent=2, default=str))
    return 0

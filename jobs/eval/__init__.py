"""`pixsearch eval`: benchmark evaluation, a subcommand group with one module per action beside this file.

    pixsearch eval run      jobs/eval/run.py      a model over a benchmark (Ray or in-process), resumable records
    pixsearch eval score    jobs/eval/score.py    score a predictions file with the official-equivalent metric
    pixsearch eval report   jobs/eval/report.py   the paper's tables and figures from run records
    pixsearch eval view     jobs/eval/view.py     trace viewer: trajectories, masks and evidence in a browser

Each action module defines `add(sub)`, which registers its parser and sets `_action`."""

from __future__ import annotations

import argparse
import importlib

NAME = "eval"
HELP = "benchmark evaluation: run a model on Ray (eval run), score predictions (eval score), report (eval report)"
DESCRIPTION = """Benchmark evaluation.

  pixsearch eval run --benchmark synthcrag --data out/synthcrag --model tiny --index out/index/demo --mode full
  pixsearch eval report out/runs/<run_id> [more runs] --out out/report

  pixsearch eval score --benchmark hotpotqa --gold data/hotpot --predictions preds.jsonl
  pixsearch eval score --benchmark crag_mm --gold data/crag-mm --predictions preds.jsonl --judge http://127.0.0.1:8000/v1
  pixsearch eval score --benchmark ade20k --gold data/ADEChallengeData2016 --predictions masks/

Prints the aggregate metrics as one JSON object on stdout (fractions; CRAG-MM truthfulness in [-1, 1])."""


ACTIONS = ["jobs.eval.run", "jobs.eval.score", "jobs.eval.report", "jobs.eval.view"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="eval_action", metavar="ACTION", required=True)
    for modname in ACTIONS:
        importlib.import_module(modname).add(sub)
    # Importing jobs.eval.run rebinds this package's `run` to that module, so the group's entry point is set
    # here, explicitly, as the function the `pixsearch` command calls.
    p.set_defaults(_run=dispatch)


def dispatch(args: argparse.Namespace) -> int:
    return args._action(args)


run = dispatch

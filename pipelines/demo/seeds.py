"""The demo over several seeds: one whole pipeline per seed, then one table of mean +/- spread.

    pixsearch demo seeds=[0,1,2]        # <output>/seed-0, seed-1, seed-2, then <output>/seeds.{md,json}

Seed s sets the world's seed and the training seed (`world.seed=s`, train `seed=s`), so every seed is a new world,
a new index and a new model: a result that holds in every seed does not hang on one draw. Each seed's pipeline is
the normal resumable demo in its own directory, so a re-run skips the seeds (and steps) already finished.

The table gives, per mode and question group, accuracy as mean +/- spread over the seeds (spread = the sample
standard deviation; with one seed it is 0) and the per-seed values; the paper's ordering (full > whole image > no
search, accuracy) is tested per seed and group, each margin with its paired test (questions won and lost, exact
McNemar p: `evaluation.breakdown`) per seed and pooled over the seeds' questions; the region-choice figures (share of gold-region egocentric
questions where the model asked for `<region>`, and gIoU of the masks it made there) come per seed from the full
mode's records (`evaluation.behaviour`).
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

from pipelines.demo.config import DemoConfig

log = logging.getLogger(__name__)


def seed_config(cfg: DemoConfig, seed: int) -> DemoConfig:
    """The single-seed demo config for `seed`: its own output directory, world seed and training seed."""
    return cfg.model_copy(
        update={
            "seeds": None,
            "output": str(Path(cfg.output) / f"seed-{seed}"),
            "world": cfg.world.model_copy(update={"seed": seed}),
            "train": cfg.train.model_copy(update={"overrides": [*cfg.train.overrides, f"seed={seed}"]}),
        }
    )


def mean_spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def seed_summary(per_seed: dict[int, list[str]]) -> dict[str, Any]:
    """{seed: [run uris]} -> accuracy per mode and group per seed, mean/spread, ordering per seed, region choice."""
    from pixsearch_core.evaluation.behaviour import behaviour
    from pixsearch_core.evaluation.breakdown import CRAG_GROUPS, ORDER, by_question_type, ordering_pairs
    from pixsearch_core.evaluation.report import load_run
    from pixsearch_core.storage import ObjectStore

    store = ObjectStore()
    acc: dict[str, dict[str, dict[int, float]]] = {}  # mode -> group -> seed -> accuracy
    n: dict[str, int] = {}
    ordering: dict[str, dict[int, bool]] = {g: {} for g, _ in CRAG_GROUPS}
    margins: dict[str, dict[int, list[int]]] = {g: {} for g, _ in CRAG_GROUPS}
    paired: dict[str, dict[int, list[list[int]]]] = {g: {} for g, _ in CRAG_GROUPS}  # [[won, lost]] per margin
    region: dict[int, dict[str, Any]] = {}
    ego_types: dict[str, dict[str, dict[int, list[int]]]] = {}  # mode -> question type -> seed -> [correct, n]
    for seed, uris in sorted(per_seed.items()):
        runs = {r.meta.get("mode"): r for r in (load_run(store, u) for u in uris)}
        for mode, run in runs.items():
            for g, _ in CRAG_GROUPS:
                acc.setdefault(mode, {}).setdefault(g, {})[seed] = float(run.aggregate[g]["accuracy"])
                n[g] = int(run.aggregate[g].get("n", 0))
            for (g, qt), c in by_question_type(run.records).items():
                if g == "ego":
                    ego_types.setdefault(mode, {}).setdefault(qt, {})[seed] = c
        if all(m in runs for m in ORDER):
            pairs = ordering_pairs({m: runs[m].records for m in ORDER})
            for g, _ in CRAG_GROUPS:
                paired[g][seed] = [pair[g] for pair in pairs]
                a = [acc[m][g][seed] for m in ORDER]
                ordering[g][seed] = a[0] > a[1] > a[2]
                margins[g][seed] = [round((a[0] - a[1]) * n[g]), round((a[1] - a[2]) * n[g])]
        if "full" in runs:
            ego = behaviour(runs["full"].records, store)["ego"]
            region[seed] = {
                k: ego.get(k) for k in ("n_region_gold", "region_chosen", "region_sent", "giou_region_chosen")
            }
    stats = {
        mode: {g: dict(zip(("mean", "spread"), mean_spread(list(v.values())))) | {"per_seed": v} for g, v in gs.items()}
        for mode, gs in acc.items()
    }
    mean_margins = {
        g: [statistics.fmean(m[i] for m in ms.values()) for i in (0, 1)] if ms else None for g, ms in margins.items()
    }
    pooled = {
        g: [[sum(p[i][j] for p in ps.values()) for j in (0, 1)] for i in (0, 1)] if ps else None
        for g, ps in paired.items()
    }
    return {
        "seeds": sorted(per_seed),
        "n": n,
        "accuracy": stats,
        "ordering": ordering,
        "margins_questions": margins,
        "mean_margins_questions": mean_margins,
        "paired": paired,
        "paired_pooled": pooled,
        "region": region,
        "ego_by_question_type": ego_types,
    }


def to_markdown(s: dict[str, Any]) -> str:
    from pixsearch_core.evaluation.breakdown import CRAG_GROUPS, mcnemar_p

    seeds = s["seeds"]
    lines = [
        f"# Demo over seeds {seeds}: accuracy (%), mean +/- sample std over seeds",
        "",
        "| Mode | " + " | ".join(f"{name} (n={s['n'].get(g, 0)})" for g, name in CRAG_GROUPS) + " |",
        "|---|" + "---|" * len(CRAG_GROUPS),
    ]
    for mode, gs in s["accuracy"].items():
        cells = []
        for g, _ in CRAG_GROUPS:
            st = gs[g]
            each = ", ".join(f"{100 * st['per_seed'][k]:.1f}" for k in sorted(st["per_seed"]))
            cells.append(f"{100 * st['mean']:.1f} +/- {100 * st['spread']:.1f} ({each})")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "## full > whole image > no search, per seed", ""]
    lines += [
        "Per seed: whether it holds, then each margin in questions with its paired test (questions won / lost against",
        "the next mode, exact McNemar p). Pooled: the seeds' questions together.",
        "",
    ]
    lines += ["| Group | " + " | ".join(f"seed {k}" for k in seeds) + " | mean margins (questions) | pooled |"]
    lines += ["|---|" + "---|" * (len(seeds) + 2)]

    def test(won_lost: list[int]) -> str:
        return f"{won_lost[0]}/{won_lost[1]}, p={mcnemar_p(*won_lost):.2g}"

    for g, name in CRAG_GROUPS:
        per = []
        for k in seeds:
            if k not in s["ordering"][g]:
                per.append("-")
                continue
            m, pair = s["margins_questions"][g][k], s["paired"][g][k]  # both set with the ordering
            detail = [f"{m[i]:+d} ({test(pair[i])})" for i in (0, 1)]
            per.append(("yes" if s["ordering"][g][k] else "no") + ": " + ", ".join(detail))
        mm = s["mean_margins_questions"][g]
        pooled = s["paired_pooled"][g]
        lines.append(
            f"| {name} | "
            + " | ".join(per)
            + " | "
            + (f"{mm[0]:+.1f}, {mm[1]:+.1f}" if mm else "-")
            + " | "
            + (f"{test(pooled[0])}; {test(pooled[1])}" if pooled else "-")
            + " |"
        )
    types = sorted({qt for m in s.get("ego_by_question_type", {}).values() for qt in m})
    if types:
        lines += ["", "## Egocentric questions answered correctly, by question type (per seed: correct of n)", ""]
        lines += ["| Mode | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
        for mode, per_type in s["ego_by_question_type"].items():
            cells = [
                ", ".join(f"{c[0]}/{c[1]}" for _, c in sorted(per_type[qt].items())) if qt in per_type else "-"
                for qt in types
            ]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "## Region choice (full mode, egocentric questions whose gold trajectory searches a region)", ""]
    lines += ["| Seed | n | asked for <region> | mask sent | gIoU of the masks made |", "|---|---|---|---|---|"]
    for k, r in sorted(s["region"].items()):
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
        lines.append(
            f"| {k} | {r['n_region_gold']} | {pct(r['region_chosen'])} | {pct(r['region_sent'])} | "
            f"{pct(r['giou_region_chosen'])} |"
        )
    return "\n".join(lines) + "\n"


def run_seeds(cfg: DemoConfig, steps: tuple[str, ...]) -> dict[str, Any]:
    """Run the demo once per seed (each resumable), then write <output>/seeds.{json,md} when every seed has runs."""
    from pipelines.demo.pipeline import Demo

    per_seed: dict[int, list[str]] = {}
    results: dict[str, Any] = {}
    for seed in cfg.seeds or []:
        one = seed_config(cfg, seed)
        log.info("[seed %d] %s", seed, one.output)
        results[f"seed-{seed}"] = Demo(one).run(steps)
        runs_json = Path(one.output) / "eval" / "runs.json"
        if runs_json.is_file():
            per_seed[seed] = json.loads(runs_json.read_text())
    if per_seed and len(per_seed) == len(cfg.seeds or []):
        summary = seed_summary(per_seed)
        out = Path(cfg.output)
        (out / "seeds.json").write_text(json.dumps(summary, indent=2))
        (out / "seeds.md").write_text(to_markdown(summary))
        results["seeds"] = summary
    return results

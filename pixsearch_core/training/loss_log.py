"""Per-step training metrics (loss terms, lr, samples/s, tokens/s) as JSONL in the run directory, and a plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pixsearch_core.jsonl import parse_jsonl

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends one JSON line per optimizer step; on resume, lines after the resumed step are dropped."""

    def __init__(self, path: str | Path, resume_step: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = read_metrics(self.path) if self.path.exists() else []
        kept = [r for r in rows if r["step"] <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    return [row for _, row in parse_jsonl(Path(path).read_bytes(), str(path))]


def plot_metrics(path: str | Path, out: str | Path) -> Path:
    """Loss terms and throughput against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(path)
    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "lm", "span", "seg", "bce", "kl"):
        if rows and key in rows[0]:
            ax1.plot(steps, [r[key] for r in rows], label=key, lw=2 if key == "loss" else 1)
    ax1.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    ax1.legend()
    ax2.plot(steps, [r["samples_per_s"] for r in rows], label="samples/s")
    ax2b = ax2.twinx()
    ax2b.plot(steps, [r["tokens_per_s"] for r in rows], color="tab:orange", label="tokens/s")
    ax2.set(xlabel="step", ylabel="samples/s", title="throughput")
    ax2b.set_ylabel("tokens/s")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    log.info("loss plot: %s", out)
    return Path(out)

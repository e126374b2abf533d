"""Shared data for the eval run / report tests: a small CRAG-MM gold file (JSONL, one turn per session)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from pixsearch_core.evaluation.sample_runner import RunnerSpec

SCRIPTED = "pixsearch_core.evaluation.scripted_runner:ScriptedRunner"


def write_crag_gold(path: Path, n: int = 12) -> Path:
    """Sessions s0..s{n-1}, turn ids q0..; odd ids are egocentric (no image_url); gold answer of qi is 'ans i'."""
    rows = [
        {
            "session_id": f"s{i}",
            "image_url": None if i % 2 else f"http://img/{i}.jpg",
            "turns": {
                "interaction_id": [f"q{i}"],
                "query": [f"what is {i}?"],
                "domain": ["d"],
                "query_category": ["simple"],
            },
            "answers": {"interaction_id": [f"q{i}"], "ans_full": [f"ans {i}"]},
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def scripted(**kwargs) -> RunnerSpec:
    return RunnerSpec(SCRIPTED, kwargs)


def strip_volatile(records: list[dict]) -> list[dict]:
    from pixsearch_core.evaluation.sample_runner import VOLATILE_FIELDS

    return sorted(
        ({k: v for k, v in r.items() if k not in VOLATILE_FIELDS} for r in records), key=lambda r: r["sample_id"]
    )


def cli_json(*argv) -> tuple[int, dict | None]:
    """Run the `pixsearch` CLI in-process at log level WARNING: (exit code, its last stdout line as JSON on success)."""
    from jobs import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["--log-level", "WARNING", *argv])
    out = buf.getvalue().strip().splitlines()
    return rc, json.loads(out[-1]) if rc == 0 and out else None

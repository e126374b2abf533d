"""Kill test of `pixsearch eval run` (issue 19's done-when): drivers in real child processes on the same run id.
Two started together: one runs, the other exits 75 (the run is held); a driver killed with SIGKILL mid-run: a
new one is refused while its lease is live, takes the run over once it expired, and finishes it. Either way the
records parts hold exactly one record per sample (counted raw, before any read-side deduplication)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from tests.eval_run_helpers import write_crag_gold

ROOT = Path(__file__).resolve().parents[2]
N = 40


def _driver(tmp_path: Path, gold: Path, run_id: str, delay: float, ttl: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PIXSEARCH_TEST_DELAY_S": str(delay),
    }
    cmd = [
        sys.executable,
        "-m",
        "tests.eval_driver_proc",
        "eval",
        "run",
        "--benchmark",
        "crag_mm",
        "--data",
        str(gold),
        "--model",
        "oracle",
        "--index",
        "none",
        "--sequential",
        "--run-id",
        run_id,
        "--out",
        str(tmp_path / "out"),
        "flush_every=1",
        "ray.batch_size=1",
        f"lease_ttl_s={ttl}",
    ]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _raw_ids(run: Path) -> list[str]:
    """Every record in every part, duplicates included."""
    return [
        i
        for p in sorted((run / "records").glob("*.parquet"))
        for i in pq.read_table(p, columns=["sample_id"]).column("sample_id").to_pylist()
    ]


def test_two_concurrent_drivers_write_one_record_per_sample(tmp_path):
    gold = write_crag_gold(tmp_path / "validation.jsonl", n=N)
    first = _driver(tmp_path, gold, "race", delay=0.2, ttl=30)
    lease = tmp_path / "out" / "runs" / "race" / "lease"
    for _ in range(1200):  # the second starts while the first surely holds the run (start-up time varies a lot
        if lease.exists() and any(lease.iterdir()):  # on a loaded machine, so a simultaneous start may not overlap)
            break
        time.sleep(0.05)
    procs = [first, _driver(tmp_path, gold, "race", delay=0.2, ttl=30)]
    outs = [p.communicate(timeout=240) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 75], [(p.returncode, err[-2000:]) for p, (_, err) in zip(procs, outs)]
    loser = outs[[p.returncode for p in procs].index(75)][1]
    assert "is being run by" in loser
    summary = json.loads(outs[[p.returncode for p in procs].index(0)][0])
    assert summary["written"] == N and summary["records"] == N
    assert Counter(_raw_ids(tmp_path / "out" / "runs" / "race")) == Counter(f"q{i}" for i in range(N))


def test_killed_driver_is_taken_over_after_its_lease_expires(tmp_path):
    gold = write_crag_gold(tmp_path / "validation.jsonl", n=N)
    run = tmp_path / "out" / "runs" / "kill"
    ttl = 20.0  # long enough that the next driver's start-up (seconds on a loaded machine) ends inside it
    first = _driver(tmp_path, gold, "kill", delay=0.1, ttl=ttl)
    for _ in range(600):  # kill it once some parts are written
        if len(list((run / "records").glob("*.parquet"))) >= 5:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()  # its lease was last renewed before this: it expires by killed_at + ttl
    first.wait(timeout=30)
    done_before = len(set(_raw_ids(run)))
    assert 5 <= done_before < N
    early = _driver(tmp_path, gold, "kill", delay=0.0, ttl=3)  # the dead driver's lease is still live
    _, err = early.communicate(timeout=120)
    assert time.monotonic() < killed_at + ttl, "the second driver started too slowly to test a live lease"
    assert early.returncode == 75 and "is being run by" in err
    time.sleep(max(0.0, killed_at + ttl + 0.5 - time.monotonic()))
    later = _driver(tmp_path, gold, "kill", delay=0.0, ttl=3)
    out, err = later.communicate(timeout=120)
    assert later.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["skipped"] == done_before and summary["written"] == N - done_before
    assert Counter(_raw_ids(run)) == Counter(f"q{i}" for i in range(N))

"""`pixsearch train --nproc N` on one machine: re-run this job under `torch.distributed.run` (torchrun) in a
subprocess, N processes; on a machine without CUDA they use DeepSpeed's CPU accelerator and gloo."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from pixsearch_core.training.distributed import free_port

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().parents[2] / "jobs" / "train.py"


def torchrun_command(nproc: int, job_args: list[str], port: int | None = None) -> list[str]:
    """The torchrun command line that runs `jobs/train.py job_args...` in `nproc` local processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone" if port is None else
            f"--master_port={port}", f"--nproc_per_node={nproc}", str(SCRIPT), *job_args]


def spawn(nproc: int, job_args: list[str], env: dict[str, str] | None = None) -> int:
    """Run the job in `nproc` local processes; returns torchrun's exit code."""
    import torch

    env = {**os.environ, **(env or {})}
    if not torch.cuda.is_available():
        env["DS_ACCELERATOR"] = "cpu"
    root = str(SCRIPT.parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = torchrun_command(nproc, job_args, free_port())
    log.info("launching: %s", " ".join(cmd))
    return subprocess.run(cmd, env=env, check=False).returncode

"""torchrun: run a job in N processes on this machine (`engine: torchrun`, `torchrun.nproc_per_node`).

Multi-node runs call torchrun (or the deepspeed launcher) directly on `jobs/train.py`; inside a launcher
(`inside_launcher()`) a job runs its own rank instead of spawning again. Without CUDA the processes use
DeepSpeed's CPU accelerator and gloo.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.engines.code import code_env, code_root

log = logging.getLogger(__name__)

_LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class TorchrunConfig(Config):
    nproc_per_node: int = Field(2, ge=1, description="processes torchrun starts on this machine")


def inside_launcher() -> bool:
    """True in a process started by torchrun / the deepspeed launcher (it has a RANK)."""
    return "RANK" in os.environ


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(nproc: int, script: str, job_args: list[str], port: int | None = None) -> list[str]:
    """The torchrun command line that runs `script job_args...` in `nproc` local processes."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone" if port is None else f"--master_port={port}",
        f"--nproc_per_node={nproc}",
        script,
        *job_args,
    ]


def spawn_torchrun(cfg: TorchrunConfig, script_rel: str, job_args: list[str]) -> int:
    """Run `<code root>/script_rel job_args...` under torchrun on this machine; returns its exit code."""
    import torch

    env = code_env()
    if not torch.cuda.is_available():
        env["DS_ACCELERATOR"] = "cpu"
    for k in _LAUNCHER_VARS:
        env.pop(k, None)
    cmd = torchrun_command(cfg.nproc_per_node, str(code_root() / script_rel), job_args, free_port())
    log.info("launching: %s", " ".join(cmd))
    return subprocess.run(cmd, env=env, check=False).returncode

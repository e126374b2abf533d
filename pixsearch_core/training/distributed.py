"""Process-group setup for DeepSpeed on CPU (DS_ACCELERATOR=cpu, gloo) or GPU (nccl), and the DeepSpeed config
assembled from the training config (batch sizes, clipping and precision always come from it)."""

from __future__ import annotations

import json
import logging
import os

from pixsearch_core.engines.torchrun import free_port

log = logging.getLogger(__name__)


def use_cuda() -> bool:
    import torch

    return os.environ.get("DS_ACCELERATOR", "cuda") != "cpu" and torch.cuda.is_available()


def init_distributed() -> tuple[int, int]:
    """Join (or, alone under plain python, create) the process group; -> (rank, world size)."""
    import torch

    if not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    if "RANK" not in os.environ:  # a single process without a launcher
        os.environ.update(
            RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())
        )
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if use_cuda() else "gloo")
    if use_cuda():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return dist.get_rank(), dist.get_world_size()


def deepspeed_config(cfg, cuda: bool) -> dict:
    """cfg.deepspeed (a dict or a JSON file) with the batch, clipping and precision settings of `cfg` filled in."""
    ds = cfg.deepspeed
    ds = json.loads(open(ds).read()) if isinstance(ds, str) else json.loads(json.dumps(ds))
    zero = ds.setdefault("zero_optimization", {"stage": 2})
    if zero.get("stage", 0) > 2:
        raise ValueError(
            f"zero_optimization.stage {zero['stage']}; allowed: 0, 1, 2 (LoRA fits without ZeRO-3, "
            "and the export reads whole parameters)"
        )
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)
    ds.update(
        train_micro_batch_size_per_gpu=cfg.optim.micro_batch_size,
        gradient_accumulation_steps=cfg.optim.grad_accum,
        gradient_clipping=cfg.optim.grad_clip,
        bf16={"enabled": bf16},
        fp16={"enabled": False},
        zero_allow_untested_optimizer=True,
    )
    ds.setdefault("steps_per_print", 10**9)
    ds.setdefault("checkpoint", {"use_node_local_storage": True})  # run_dir need not be shared across nodes
    ds.pop("train_batch_size", None)
    return ds


def shutdown() -> None:
    """Destroy the process group (ZeRO aborts at exit otherwise) and DeepSpeed's cached groups, so that a later
    `init_distributed` in the same process (tests, notebooks) starts clean."""
    import importlib

    import deepspeed.utils.groups
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    importlib.reload(deepspeed.utils.groups)

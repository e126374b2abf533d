"""Where an encoder runs and how many items it takes per forward pass.

`device: auto` (the default) picks the GPU Spark assigned to the task (`spark.task.resource.gpu.amount`), else a
visible CUDA device, else the CPU (indexing/embedders.py `resolve_device`). `batch_size: auto` picks the batch for
that device: on CPU the measured defaults (64 texts, 16 images); on a GPU a size that grows with the memory this
task may use (the device's total memory times its share: `spark.gpus_per_task`, e.g. 0.25 when four tasks share
one GPU), about 32 texts or 16 images of 224 px per usable GiB with half the memory left for the model and
allocator, capped at 1024 / 512. These GPU sizes are a rule of thumb for base-size encoders in float32 (MPNet,
ViT-B), not measured here (no GPU on the development machine); set an integer to override.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: the share of one GPU a Spark task holds (set by the embed task from `spark.gpus_per_task`)
GPU_SHARE_ENV = "PIXSEARCH_GPU_SHARE"
CPU_BATCH = {"text": 64, "image": 16}
PER_GIB = {"text": 32, "image": 16}
CAP = {"text": 1024, "image": 512}


def gpu_share() -> float:
    share = float(os.environ.get(GPU_SHARE_ENV, "1") or 1)
    return share if 0 < share <= 1 else 1.0


def gpu_memory_gib(device: str) -> float:
    import torch

    index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index).total_memory / 2**30


def batch_size(requested: int | str, kind: str, device: str, memory_gib: float | None = None) -> int:
    """`requested` if it is an int, else the automatic size for `kind` ("text" | "image") on `device`."""
    if kind not in CPU_BATCH:
        raise ValueError(f"unknown encoder kind {kind!r}; allowed: {sorted(CPU_BATCH)}")
    if requested != "auto":
        return int(requested)
    if not device.startswith("cuda"):
        return CPU_BATCH[kind]
    usable = (memory_gib if memory_gib is not None else gpu_memory_gib(device)) * gpu_share() * 0.5
    size = int(min(CAP[kind], max(CPU_BATCH[kind], PER_GIB[kind] * usable)))
    log.info("%s batch size %d on %s (%.1f GiB usable)", kind, size, device, usable)
    return size

"""Box-prompted pre-training of a SAM that starts from random weights (the demo's `tiny` SAM), before stage 1.

    summary = pretrain_sam(model, samples, collate, cfg.sam_pretrain, cfg.loss, seed=0, rank=0, world=1)

Not in the paper: PixSearch starts from a pretrained SAM (ViT-H), whose encoder and decoder already know object
shape; stage 1 then only teaches the LM's [SEG] span to prompt it. A from-scratch SAM has to learn shape from that
span prompt alone, and in the demo's 600 stage-1 steps it learns blobs (README "Masks"). This step trains the SAM
image encoder, prompt encoder and mask decoder the way SAM itself was trained: each stage-1 sample's gold mask,
prompted by its bounding box with SAM-style noise on the corners (a fraction `box_jitter` of the box side), under
the stage's own mask loss (focal-Tversky + BCE with `loss`'s weights and α/β). No LM runs, so a step costs a few
hundred milliseconds on a CPU.

Every rank draws its own samples (its share of the stage-1 mixture); gradients are averaged across ranks and the
parameters start from rank 0's, so all ranks hold the same SAM afterwards. The box noise is a function of
(seed, rank, step): a rerun repeats the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from pixsearch_core.training.config import SamPretrainConfig
from pixsearch_core.training.loss_log import MetricsLog
from pixsearch_core.training.losses import focal_tversky_loss, mask_bce_loss
from pixsearch_core.training.schedule import make_scheduler

log = logging.getLogger(__name__)

#: the SAM parts this step trains (those of them that are trainable)
SAM_PARTS = ("sam_image_encoder", "prompt_encoder", "mask_decoder")


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    """(H, W) bool -> (4,) float xyxy box in pixels, x1/y1 exclusive (the pixel grid SAM's box prompts use)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        raise ValueError("an empty mask has no box")
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def jitter_box(box: torch.Tensor, size: tuple[int, int], frac: float, generator: torch.Generator) -> torch.Tensor:
    """Each corner moved by N(0, frac x the box's side), then clipped to the image (H, W) and kept >= 1 px wide."""
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    noise = torch.randn(4, generator=generator) * frac * torch.tensor([w, h, w, h])
    x0, y0, x1, y1 = (box + noise).tolist()
    H, W = size
    x0, x1 = sorted((min(max(x0, 0.0), W - 1.0), min(max(x1, 0.0), float(W))))
    y0, y1 = sorted((min(max(y0, 0.0), H - 1.0), min(max(y1, 0.0), float(H))))
    return torch.tensor([x0, y0, max(x1, x0 + 1.0), max(y1, y0 + 1.0)])


def trainable_sam_params(model) -> list[torch.nn.Parameter]:
    return [p for name in SAM_PARTS for p in getattr(model, name).parameters() if p.requires_grad]


def pretrain_sam(
    model,
    samples: Iterator,
    collate: Callable[[list], dict],
    cfg: SamPretrainConfig,
    loss,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    metrics_path: Path | None = None,
) -> dict:
    """Train `model`'s SAM parts for cfg.steps box-prompted steps on `samples` (stage-1 samples with gold masks),
    in place. `loss`: the training config's LossConfig (seg/bce weights, tversky α/β). -> {steps, loss, iou}:
    the last step's loss and the mean IoU (mask logits > 0 vs gold) of the last 50 steps' masks."""
    import torch.distributed as dist

    params = trainable_sam_params(model)
    if not params:
        raise ValueError(
            f"sam_pretrain.steps={cfg.steps} but none of the SAM parts {list(SAM_PARTS)} is trainable; add them to "
            "model trainable.parts (pre-training is for a SAM trained from scratch) or set sam_pretrain.steps=0"
        )
    distributed = world > 1 and dist.is_available() and dist.is_initialized()
    if distributed:
        for p in params:
            dist.broadcast(p.data, src=0)
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)

    sched = make_scheduler(opt, cfg.steps, cfg.warmup_steps, "cosine", 0.1)  # the stages' schedule, to 10%
    metrics = MetricsLog(metrics_path) if metrics_path is not None and rank == 0 else None
    was_training = model.training
    model.train()
    ious: list[float] = []
    last: float | None = None
    t0 = time.perf_counter()
    try:
        for step in range(cfg.steps):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + rank * 10_007 + step)
            batch = collate([next(samples) for _ in range(cfg.batch_size)])
            rows = [b for b, g in enumerate(batch["gt_masks"]) if g.shape[0] and g[0].any()]
            opt.zero_grad(set_to_none=False)
            if rows:
                gold = torch.stack([batch["gt_masks"][b][0].bool() for b in rows])
                images = model.prepare_images([batch["images"][b] for b in rows])
                boxes = torch.stack([jitter_box(mask_box(g), tuple(g.shape), cfg.box_jitter, gen) for g in gold])
                logits, _ = model.segment_boxes(images, boxes)
                pred = torch.stack(logits)
                target = gold.to(pred.device).float()
                total = loss.seg * focal_tversky_loss(
                    pred, target, alpha=loss.tversky_alpha, beta=loss.tversky_beta
                ) + loss.bce * mask_bce_loss(pred, target)
                total.backward()
                last = float(total.detach())
                with torch.no_grad():
                    p, g = pred > 0, target.bool()
                    inter = (p & g).flatten(1).sum(1).float()
                    union = (p | g).flatten(1).sum(1).float().clamp(min=1)
                    ious.extend((inter / union).tolist())
            else:  # nothing to learn from on this rank: zero gradients, still in the all-reduce below
                log.warning("sam pre-training step %d: no sample with a gold mask in the batch", step)
            for p in params:  # parts a box prompt does not reach (the mask-prompt convs) have no gradient
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            if distributed:
                for p in params:
                    dist.all_reduce(p.grad)
                    p.grad /= world
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            recent = sum(ious[-50:]) / max(1, len(ious[-50:]))
            if metrics is not None:
                metrics.write(
                    {"step": step + 1, "loss": last, "iou_50": recent, "lr": lr, "elapsed_s": time.perf_counter() - t0}
                )
            if rank == 0 and ((step + 1) % 50 == 0 or step + 1 == cfg.steps):
                log.info(
                    "sam pre-training step %d/%d loss %s IoU (last 50 masks) %.3f",
                    step + 1,
                    cfg.steps,
                    "-" if last is None else f"{last:.4f}",
                    recent,
                )
    finally:
        model.train(was_training)
        model._sam_cache.clear()  # embeddings of the old encoder weights
    return {"steps": cfg.steps, "loss": last, "iou": sum(ious[-50:]) / max(1, len(ious[-50:]))}

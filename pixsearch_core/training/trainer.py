"""The training loop of one stage under DeepSpeed (ZeRO-2, bf16 on GPU; fp32 + gloo on CPU).

    summary = train(cfg, stage=1)        # in every process of a torchrun / deepspeed launch (or alone)

Model: the registry's builder with LoRA on the LM (conf `model`); stage 2 starts from stage 1's export
(`stage2.init_from: stage1`). Optimizer: AdamW(betas, weight decay) over the trainable parameters, LambdaLR
warm-up + decay, gradient accumulation and clipping by DeepSpeed. Every micro-batch reseeds torch from
(seed, rank, micro-batch), so dropout, like the data order, is a function of the position: a resumed run repeats
an uninterrupted one. Outputs: checkpoints (checkpoints.py), `<run_dir>/stage<N>/metrics.jsonl` + `loss.png`,
and the export `<output>/stage<N>/final/` (trainable.safetensors + config.json: `ModelConfig.weights` loads it).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from pixsearch_core import lineage
from pixsearch_core.prompts.collate import Collator
from pixsearch_core.storage import ObjectStore, join
from pixsearch_core.training import train_state as checkpoints
from pixsearch_core.training.config import TrainConfig
from pixsearch_core.training.data import build_mixture, prepare_shards
from pixsearch_core.training.distributed import deepspeed_config, init_distributed, shutdown, use_cuda
from pixsearch_core.training.loss_log import MetricsLog, plot_metrics
from pixsearch_core.training.losses import LossWeights, answer_positions, pixsearch_loss
from pixsearch_core.training.sam_pretrain import pretrain_sam
from pixsearch_core.training.schedule import make_scheduler

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig, stage: int, store: ObjectStore):
    from pixsearch_core.modeling.weights import load_trainable
    from pixsearch_core.registry import get

    device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if use_cuda() else "cpu"
    overrides = [f"device={device}", *cfg.model.build_overrides()]  # the section sets no device (TrainConfig)
    if cfg.precision == "fp32" or (cfg.precision == "auto" and not use_cuda()):
        overrides.append("dtype=float32")
    model = get("model", cfg.model.size)(overrides=overrides, store=store)
    if cfg.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    init = cfg.stage(stage).init_from
    if init:
        load_trainable(model, join(cfg.output, "stage1", "final") if init == "stage1" else init, store)
    return model


def _collator(model, cfg: TrainConfig) -> Collator:
    d = cfg.data
    return Collator(model.tokenizer, d.max_length, d.image_max_side, d.template, d.restate_question)


def _step_loss(engine, batch, cfg: TrainConfig, with_teacher: bool):
    device = engine.device
    out = engine(
        batch["images"],
        batch["input_ids"].to(device),
        batch["attention_mask"].to(device),
        span_tags=batch["tags"].to(device),
        with_teacher=with_teacher,
    )
    w = LossWeights(**cfg.loss.model_dump())
    ids = engine.module.token_ids
    decision = batch["input_ids"] == ids.search_start if w.choice else None
    answer_at = answer_positions(batch["input_ids"], ids.info_end) if w.answer else None
    total, terms = pixsearch_loss(
        out,
        batch["labels"].to(device),
        batch["tags"].to(device),
        batch["gt_masks"],
        w,
        decision=decision,
        answer_at=answer_at,
    )
    return total + _touch_every_trainable(engine.module), terms


def param_groups(
    model, lr: float, token_rows_lr_scale: float = 1.0, part_lr_scale: dict[str, float] | None = None
) -> list[dict]:
    """The optimizer's parameter groups: every trainable parameter at `lr`, except
    - with new-token-row training and a scale != 1, the LM's embedding/output matrices (whose only moving rows are
      the special tokens') get `lr * token_rows_lr_scale` in a group of their own;
    - each part named in `part_lr_scale` (a trainable part's name -> multiplier) gets `lr * multiplier` in a group
      of its own (0 holds the part still, e.g. a SAM pre-trained before stage 1).
    The LR schedule scales every group alike."""
    from pixsearch_core.modeling.trainable import PARTS, token_row_params

    part_lr_scale = {k: v for k, v in (part_lr_scale or {}).items() if v != 1.0}
    unknown = sorted(set(part_lr_scale) - set(PARTS))
    if unknown:
        raise ValueError(f"optim.part_lr_scale names unknown parts {unknown}; allowed: {', '.join(PARTS)}")
    params = [p for p in model.parameters() if p.requires_grad]
    rows = token_row_params(model) if getattr(model, "new_token_rows", False) and token_rows_lr_scale != 1.0 else []
    scale = {id(p): token_rows_lr_scale for p in rows if p.requires_grad}
    for part, mult in part_lr_scale.items():
        module = getattr(model, part, None)
        if module is None:
            raise ValueError(f"optim.part_lr_scale: this model has no part {part!r}")
        for p in module.parameters():
            if p.requires_grad:
                scale[id(p)] = mult
    groups: dict[float, list] = {}
    for p in params:
        groups.setdefault(scale.get(id(p), 1.0), []).append(p)
    return [{"params": ps, "lr": lr * mult} for mult, ps in sorted(groups.items(), key=lambda kv: kv[0] != 1.0)]


def _touch_every_trainable(model) -> torch.Tensor:
    """0 x (one element of every trainable parameter): each gets a (zero) gradient on every rank and every step.

    A micro-batch with no entity span (a no-search question, an evidence-first trajectory) leaves the mask head,
    prompt encoder and mask decoder out of the graph; ranks would then reduce gradient buckets of different sizes
    and gloo/NCCL abort ("Received data size doesn't match expected size"), as DDP without find_unused_parameters.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return sum(p.reshape(-1)[0] for p in params) * 0.0


def _reduce(values: dict[str, float], world: int) -> dict[str, float]:
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def train(cfg: TrainConfig, stage: int, stop_after: int | None = None, store: ObjectStore | None = None) -> dict:
    """Train one stage (resuming from its LATEST checkpoint if any); returns {step, final_loss, export}."""
    import deepspeed
    import torch.distributed as dist

    store = store or ObjectStore(cfg.storage)
    rank, world = init_distributed()
    sc, oc = cfg.stage(stage), cfg.optim
    prefix, run_dir = join(cfg.output, f"stage{stage}"), Path(cfg.run_dir) / f"stage{stage}"
    if rank == 0:
        store.clean_incomplete(prefix, best_effort=True)  # what a killed run's uploads left (tmp, multipart)
        prepare_shards(cfg, sc.ratio.as_dict(), store)
    dist.barrier()
    mixture, epoch = build_mixture(cfg, sc, rank, world, store)
    per_step = oc.micro_batch_size * oc.grad_accum * world
    total = sc.total_steps(epoch, per_step)
    model = build_model(cfg, stage, store)
    tag = checkpoints.latest(join(prefix, "checkpoints"), store)
    if stage == 1 and cfg.sam_pretrain.steps and not tag:  # a resumed stage 1 has its pre-trained SAM in the checkpoint
        log.info("stage 1: %d steps of box-prompted SAM pre-training first", cfg.sam_pretrain.steps)
        pretrain_sam(
            model,
            mixture.iterate(start=0),
            _collator(model, cfg),
            cfg.sam_pretrain,
            cfg.loss,
            seed=cfg.seed,
            rank=rank,
            world=world,
            metrics_path=run_dir / "sam_pretrain.jsonl",
        )
    optimizer = torch.optim.AdamW(
        param_groups(model, sc.lr, oc.token_rows_lr_scale, oc.part_lr_scale),
        lr=sc.lr,
        betas=oc.betas,
        weight_decay=oc.weight_decay,
        eps=oc.eps,
    )
    engine, _, _, scheduler = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=make_scheduler(optimizer, total, sc.warmup_steps, sc.decay, sc.min_lr_ratio),
        config=deepspeed_config(cfg, use_cuda()),
    )
    client = {"step": 0, "micro_batches": 0}
    if tag:
        client = checkpoints.load(engine, join(prefix, "checkpoints"), tag, run_dir / f"resume-rank{rank}", store)
    metrics = MetricsLog(run_dir / "metrics.jsonl", client["step"]) if rank == 0 else None
    collate = _collator(model, cfg)
    samples = mixture.iterate(start=client["micro_batches"] * oc.micro_batch_size)
    micro, step, last = client["micro_batches"], client["step"], {}
    engine.train()
    log.info("stage %d: %d optimizer steps of %d samples (%d ranks), from step %d", stage, total, per_step, world, step)
    acc, t0 = {}, time.perf_counter()
    while step < total and (stop_after is None or step < stop_after):
        batch = collate([next(samples) for _ in range(oc.micro_batch_size)])
        torch.manual_seed(cfg.seed * 1_000_003 + rank * 10_007 + micro)
        loss, terms = _step_loss(engine, batch, cfg, cfg.loss.kl > 0)
        if batch["weight"] != 1.0:  # every sample of this micro-batch failed in the collator (logged there)
            loss = loss * batch["weight"]
        lr = scheduler.get_last_lr()[0]  # the LR this optimizer step uses
        engine.backward(loss)
        engine.step()
        micro += 1
        for k, v in {"loss": float(loss.detach()), **terms, "tokens": batch["n_tokens"]}.items():
            acc[k] = acc.get(k, 0.0) + v
        if micro % oc.grad_accum:
            continue
        step += 1
        red, dt = _reduce(acc, world), time.perf_counter() - t0
        last = {k: v / (oc.grad_accum * world) for k, v in red.items() if k != "tokens"}
        row = {
            "step": step,
            **last,
            "lr": lr,
            "samples_per_s": per_step / dt,
            "tokens_per_s": red["tokens"] / dt,
            "step_time_s": dt,
        }
        if metrics:
            metrics.write(row)
            log.info(
                "stage %d step %d/%d loss %.4f lr %.2e %.1f samples/s",
                stage,
                step,
                total,
                row["loss"],
                row["lr"],
                row["samples_per_s"],
            )
        if step % cfg.save_every == 0 or step == total:
            checkpoints.save(
                engine,
                join(prefix, "checkpoints"),
                run_dir / "ckpt",
                step,
                {"step": step, "micro_batches": micro, "samples": micro * oc.micro_batch_size},
                store,
                cfg.keep_checkpoints,
            )
        acc, t0 = {}, time.perf_counter()
    export = _finish(engine, cfg, prefix, run_dir, rank, store, done=step >= total, stage=stage, step=step)
    dist.barrier()
    shutdown()
    return {"rank": rank, "step": step, "total_steps": total, "final_loss": last.get("loss"), "export": export}


def _finish(
    engine, cfg: TrainConfig, prefix: str, run_dir: Path, rank: int, store, done: bool, stage: int, step: int
) -> str | None:
    """Rank 0: the loss plot and, when the stage is complete, the trainable-weights export and its lineage."""
    from pixsearch_core.modeling.weights import save_trainable

    if rank != 0:
        return None
    if (run_dir / "metrics.jsonl").exists():
        plot_metrics(run_dir / "metrics.jsonl", run_dir / "loss.png")
        store.put_file(join(prefix, "metrics.jsonl"), run_dir / "metrics.jsonl")
        store.put_file(join(prefix, "loss.png"), run_dir / "loss.png")
    if not done:
        return None
    if cfg.export_hf:
        from pixsearch_core.modeling.hf_export import export_hf

        export_hf(engine.module, join(prefix, "final"), store)
    lineage.write(store, join(prefix, "final"), _lineage(cfg, stage, step, store))
    save_trainable(engine.module, join(prefix, "final"), store)  # its config.json last: the export is complete
    return join(prefix, "final")


def _lineage(cfg: TrainConfig, stage: int, step: int, store) -> dict:
    """Code, config, data (each dataset's shard manifest digest), base weights named by URI in the model
    overrides (`...path=` / `...weights=`), and the checkpoint this stage started from."""
    init = cfg.stage(stage).init_from
    init = join(cfg.output, "stage1", "final") if init == "stage1" else init
    base = {}
    for item in cfg.model.overrides:
        key, _, value = item.partition("=")
        if key.endswith(("path", "weights")) and value and value not in ("null", "None"):
            base[key] = value
    data = [(ds.name, ds.shards) for ds in cfg.resolved_datasets()]
    return lineage.training_lineage(
        store,
        stage=stage,
        step=step,
        config=cfg.model_dump(mode="json"),
        data=data,
        base_weights=base,
        init_checkpoint=init,
    )

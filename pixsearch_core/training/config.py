"""The training config (conf/train/*.yaml), validated up front. One file serves both stages:
`pixsearch train --stage 1|2 --config conf/train/<name>.yaml [key=value ...]` picks `stage1` or `stage2`."""

from __future__ import annotations

import math
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from pixsearch_core.config import Config
from pixsearch_core.engines import TorchrunConfig
from pixsearch_core.modeling.spec import ModelSpec
from pixsearch_core.storage import StorageConfig


class DatasetConfig(Config):
    name: str
    stage: Literal[1, 2]
    reader: str = Field(description="pixsearch_core.training.readers.READERS")
    path: str = Field(description="the source in its public layout (file, directory, URI); relative: under data.root")
    shards: str | None = Field(
        None, description="where its webdataset shards live (packed on first use); default <output>/shards/<name>"
    )
    weight: float = Field(1.0, ge=0.0, description="weight within its stage's group")
    options: dict[str, Any] = Field({}, description="reader options (images, classes, max_classes, ...)")


class DataConfig(Config):
    root: str = Field("", description="base of relative dataset paths and of relative `options` paths")
    datasets: list[DatasetConfig]
    max_length: int = Field(512, ge=16)
    image_max_side: int = Field(1024, ge=16, description="images (and gold masks) are resized to fit")
    template: str = "vicuna_v1"
    restate_question: bool = Field(
        False,
        description="end every <information> block with the question again (prompts.restate; not in the paper): "
        "for small LMs that lose the question behind the evidence; evaluate with decode.restate_question=true",
    )
    samples_per_shard: int = Field(1000, ge=1)


class Ratio(Config):
    stage1: float = Field(ge=0.0)
    stage2: float = Field(ge=0.0)

    def as_dict(self) -> dict[int, float]:
        return {1: self.stage1, 2: self.stage2}


class StageConfig(Config):
    lr: float = Field(gt=0)
    ratio: Ratio = Field(description="stage-1 : stage-2 sampling ratio, e.g. {stage1: 7, stage2: 9}")
    epochs: float = Field(
        1.0,
        gt=0,
        description="passes over this stage's own datasets, or with steps_per_epoch that many fixed-length epochs",
    )
    steps_per_epoch: int | None = Field(
        None,
        ge=1,
        description="an epoch as LISA-lineage trainers count it (LISA, "
        "PLUM: 500 optimizer steps, whatever the data size); null = one pass",
    )
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    warmup_steps: int = Field(0, ge=0)
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    init_from: str | None = Field(
        None, description="trainable weights to start from; 'stage1' = that stage's final export under output"
    )

    @model_validator(mode="after")
    def _one_step_count(self):
        if self.max_steps is not None and self.steps_per_epoch is not None:
            raise ValueError(
                f"max_steps={self.max_steps} and steps_per_epoch={self.steps_per_epoch} both set the "
                "step count; set one of them"
            )
        return self

    def total_steps(self, epoch_samples: int, samples_per_step: int) -> int:
        """Optimizer steps this stage runs: max_steps, else epochs x steps_per_epoch, else epochs passes over
        `epoch_samples` at `samples_per_step` (micro-batch x grad accumulation x world size) per step."""
        if self.max_steps:
            return self.max_steps
        if self.steps_per_epoch:
            return max(1, math.ceil(self.epochs * self.steps_per_epoch))
        return max(1, math.ceil(self.epochs * epoch_samples / samples_per_step))


class OptimConfig(Config):
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(0.0, ge=0.0)
    eps: float = 1e-8
    micro_batch_size: int = Field(6, ge=1)
    grad_accum: int = Field(10, ge=1)
    grad_clip: float = Field(1.0, ge=0.0)
    token_rows_lr_scale: float = Field(
        1.0,
        gt=0.0,
        description="LR multiplier for the new special tokens' embedding/output rows (their own optimizer group; "
        "only with model.trainable.new_token_rows). Not in the paper: a small pretrained LM's new rows barely move "
        "at the LoRA learning rate in a short run",
    )
    part_lr_scale: dict[str, float] = Field(
        default_factory=dict,
        description="LR multiplier per trainable part (a name of model trainable.parts -> >= 0), each such part in "
        "an optimizer group of its own; 0 holds a part still while it stays in the export (e.g. "
        "{sam_image_encoder: 0} after sam_pretrain)",
    )

    @model_validator(mode="after")
    def _scales(self) -> OptimConfig:
        bad = {k: v for k, v in self.part_lr_scale.items() if not v >= 0}
        if bad:
            raise ValueError(f"optim.part_lr_scale: multipliers must be >= 0, got {bad}")
        return self


class LossConfig(Config):
    """Eq. 6's weights (paper Table 9), and `choice` (not in the paper, default 0): an extra cross-entropy on the
    query-modality decision after each `<search>` (training.losses.choice_loss), and `answer` (likewise): an extra
    cross-entropy on what the model writes after its last evidence block (training.losses.answer_loss). `tversky_alpha`/`tversky_beta`
    weigh false negatives / false positives in L_seg; the paper names Focal-Tversky without its α/β, so the
    defaults are Abraham & Khan's 0.7/0.3 (which favour recall: masks grow past small objects)."""

    ce: float = 1.0
    cls: float = 2.0
    seg: float = 8.0
    bce: float = 2.0
    kl: float = 0.1
    choice: float = Field(0.0, ge=0.0)
    answer: float = Field(0.0, ge=0.0)
    tversky_alpha: float = Field(0.7, ge=0.0, le=1.0)
    tversky_beta: float = Field(0.3, ge=0.0, le=1.0)


class ModelRef(ModelSpec):
    """The model trained: a size, optionally a conf/model file (model=@conf/model/13b.yaml), and overrides. Training
    places the model itself (each rank's device) and `precision` decides its dtype, so the section sets no
    `device`, and a `dtype` it sets must agree with `precision`."""

    @model_validator(mode="after")
    def _no_device(self) -> ModelRef:
        if any(k == "device" for k in self.setting_keys()):
            raise ValueError(
                "train places the model on each rank's device (cuda:<LOCAL_RANK> or cpu); remove "
                "`device` from the model section"
            )
        return self

    def dtype(self) -> str | None:
        """The dtype the section sets (its fields or overrides), if any."""
        given = dict(o.partition("=")[::2] for o in self.build_overrides())
        return str(yaml.safe_load(given["dtype"])) if "dtype" in given else None


class SamPretrainConfig(Config):
    steps: int = Field(0, ge=0, description="optimizer steps of box-prompted SAM pre-training before stage 1; 0 = off")
    lr: float = Field(2.0e-3, gt=0.0, description="peak learning rate (linear warm-up, cosine decay to 10%)")
    warmup_steps: int = Field(20, ge=0)
    batch_size: int = Field(16, ge=1, description="samples per rank and step")
    box_jitter: float = Field(
        0.1, ge=0.0, le=0.5, description="std of the noise on each box corner, as a fraction of the box's side"
    )


class TrainConfig(Config):
    seed: int = 0
    engine: Literal["sequential", "torchrun"] = Field(
        "sequential",
        description="sequential: this process; torchrun: torchrun.nproc_per_node processes on this machine",
    )
    torchrun: TorchrunConfig = TorchrunConfig()
    output: str = Field(description="object-store prefix: checkpoints and the final export per stage")
    run_dir: str = Field(description="local directory: metrics.jsonl, loss plot, checkpoint staging")
    storage: StorageConfig = StorageConfig()
    model: ModelRef = ModelRef()
    data: DataConfig
    stage1: StageConfig
    stage2: StageConfig
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    sam_pretrain: SamPretrainConfig = Field(
        SamPretrainConfig(),
        description="box-prompted pre-training of a from-scratch SAM before stage 1 (training/sam_pretrain.py)",
    )
    export_hf: bool = Field(
        True,
        description="also export the LM for plain transformers / peft (<final>/hf/: "
        "the LM directory with LoRA merged, and the LoRA adapter)",
    )
    save_every: int = Field(100, ge=1, description="optimizer steps between checkpoints")
    keep_checkpoints: int = Field(2, ge=1)
    gradient_checkpointing: bool = Field(
        False, description="recompute the LM's activations (13b: needed for micro-batch 6 on 80 GB)"
    )
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    deepspeed: dict[str, Any] | str = Field(
        {},
        description="DeepSpeed config (dict or a JSON path); batch sizes, "
        "clipping and precision are filled in from this file",
    )

    @model_validator(mode="after")
    def _one_dtype(self) -> TrainConfig:
        dtype, want = self.model.dtype(), {"fp32": "float32", "bf16": "bfloat16"}.get(self.precision)
        if dtype is not None and dtype != want:
            raise ValueError(
                f"the weights' dtype is set twice: precision={self.precision} and the model section's "
                f"dtype={dtype}; make them agree (fp32 = float32, bf16 = bfloat16) or drop model dtype"
            )
        return self

    def resolved_datasets(self) -> list[DatasetConfig]:
        """Datasets with paths under data.root and default shard prefixes filled in."""
        from pixsearch_core.storage import join

        def under(p):
            return p if not self.data.root or p.startswith("/") or "://" in p else join(self.data.root, p)

        out = []
        for ds in self.data.datasets:
            opts = {
                k: under(v) if k in ("images", "classes") and isinstance(v, str) else v for k, v in ds.options.items()
            }
            out.append(
                ds.model_copy(
                    update={
                        "path": under(ds.path),
                        "options": opts,
                        "shards": ds.shards or join(self.output, "shards", ds.name),
                    }
                )
            )
        return out

    def stage(self, n: int) -> StageConfig:
        if n not in (1, 2):
            raise ValueError(f"stage {n!r}; allowed: 1, 2")
        return self.stage1 if n == 1 else self.stage2

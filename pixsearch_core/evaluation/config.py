"""The `pixsearch eval run` config (conf/eval/*.yaml) and the decode modes a run can be asked for.

A mode names one paper setting (Tables 1, 6, 7) and maps to decode options:

    full                       PixSearch_Full: model-driven searches, every query modality, unbounded
    no_search                  B = 0
    text_question | whole_image  the fixed-query baselines (the question / the whole image is the query)
    no_region | no_text | no_image | only_region | only_text | only_image   Table 6 (allowed query modalities)
    budget1, budget2, ...      Table 7 (at most N searches)
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.engines import RayConfig as RayEngineConfig
from pixsearch_core.retrieval.crop import RegionCrop
from pixsearch_core.storage import StorageConfig

BASE_MODES = ("full", "no_search", "text_question", "whole_image")
MODALITY_MODES = ("no_region", "no_text", "no_image", "only_region", "only_text", "only_image")
_BUDGET = re.compile(r"^budget(\d+)$")


def mode_options(mode: str) -> dict[str, Any]:
    """Decode-option fields for a mode name (see the module docstring); unknown names raise ValueError."""
    if mode in BASE_MODES:
        return {"mode": mode}
    if mode in MODALITY_MODES:
        return {"mode": "full", "modalities": mode}
    m = _BUDGET.match(mode)
    if m:
        return {"mode": "full", "max_searches": int(m.group(1))}
    raise ValueError(f"unknown eval mode {mode!r}; allowed: {', '.join(BASE_MODES + MODALITY_MODES)}, "
                     "or budget<N> (e.g. budget2)")


class RayConfig(RayEngineConfig):
    """The `ray:` section: where Ray runs (address, or RAY_ADDRESS, or a local Ray; see pixsearch_core.engines)
    and how wide the run is."""

    num_replicas: int = Field(2, ge=1, description="model replicas (actors), each with its own searcher")
    cpus_per_replica: float = Field(0.5, gt=0, description="fractional on small machines (whole CPUs deadlock "
                                    "Ray Data's read tasks on a 2-CPU box)")
    gpus_per_replica: float = Field(0.0, ge=0)
    batch_size: int = Field(4, ge=1, description="samples per run_batch call (decoded together)")


class ModelSettings(Config):
    """Which model a replica builds when --model is a checkpoint rather than a registered model name."""

    size: str = Field("tiny", description="registered model builder (tiny | mini | 13b) for checkpoints")
    overrides: list[str] = Field(default_factory=list, description="builder config overrides")
    device: str = Field("auto", description="auto = cuda when the replica has a GPU, else cpu")


class EvalRunConfig(Config):
    """Everything of a run except what the command line names (benchmark, data, model, index, mode)."""

    engine: Literal["ray", "sequential"] = Field("ray", description="ray: a replica pool on Ray (the `ray:` "
                                                 "section); sequential: in this process")
    ray: RayConfig = RayConfig()
    model: ModelSettings = ModelSettings()
    decode: dict[str, Any] = Field(default_factory=dict, description="DecodeOptions fields (max_new_tokens, "
                                   "temperature, ...); the mode sets mode / modalities / max_searches")
    search_k: int = Field(3, ge=1, description="evidence passages per search")
    region: RegionCrop = Field(default_factory=RegionCrop, description="how region queries are cropped")
    prompt_template: str = Field("{question}", description="the prompt; {question} is replaced (the model "
                                 "adapter adds the image slot)")
    benchmark_options: dict[str, Any] = Field(default_factory=dict, description="passed to the benchmark class")
    split: str | None = Field(None, description="benchmark split; null = the benchmark's default")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N examples")
    output: str = Field("out", description="records go to <output>/runs/<run_id>/ (a path or s3:// URI)")
    flush_every: int = Field(16, ge=1, description="records per parquet part (a crash loses at most these)")
    storage: StorageConfig = StorageConfig()

    def decode_options(self, mode: str) -> dict[str, Any]:
        return {**self.decode, "top_k": self.search_k, **mode_options(mode)}

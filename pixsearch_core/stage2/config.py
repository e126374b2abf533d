"""`pixsearch data build-stage2` config (conf/data/*.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.retrieval.backends import RetrieverConfig
from pixsearch_core.stage2.llm import LLMConfig
from pixsearch_core.storage import StorageConfig

#: the ten question types of the paper's Table 10, in its order
QUESTION_TYPES = (
    "OCR Read",
    "OCR + Visual Reasoning",
    "Multi-hop External Knowledge Reasoning",
    "Fine-grained Entity Identification",
    "Visual Reasoning - Attribute",
    "Visual Reasoning - Counting",
    "Visual Reasoning - Binary",
    "Social Commonsense Reasoning",
    "Physical Commonsense Reasoning",
    "Factoid / KB Questions",
)
#: the types the paper keeps (retrieval is mostly needed to identify entities and fetch knowledge about them)
RETRIEVAL_TYPES = (
    "Multi-hop External Knowledge Reasoning",
    "Fine-grained Entity Identification",
    "Factoid / KB Questions",
)


class SourceConfig(Config):
    """One training split in its published layout."""

    reader: str = Field(description="synthcrag | textvqa | infoseek | oven | crag_mm | okvqa | aokvqa | webqa")
    path: str = Field(description="the split's file or directory (path or s3:// URI)")
    images: str | None = Field(None, description="image directory where the layout keeps images apart")
    split: str | None = Field(None, description="split name for readers that take one (default: train)")
    limit: int | None = Field(None, ge=1, description="only the first N questions of this source")


class RetrievalSettings(Config):
    retriever: RetrieverConfig = Field(
        description="the project's retriever the searches run on (index URI, http "
        "service, cragmm API, replay; with its k and region crop)"
    )
    max_passage_tokens: int = Field(512, ge=1, description="passage budget, as the decoder's option")
    tokenizer: str = Field(
        "tiny",
        description="tokenizer that cuts passages exactly as the decoder will: 'tiny' "
        "or a Hugging Face tokenizer directory",
    )


class Stage2Config(Config):
    output: str = Field(description="output prefix: train.jsonl (what stage-2 training reads), parts, manifest")
    sources: list[SourceConfig]
    llm: LLMConfig = LLMConfig()
    retrieval: RetrievalSettings
    prompts: str = Field(
        "conf/data/prompts/stage2", description="prompt files (select, decompose, generate, refine, assign .txt)"
    )
    keep_types: list[str] = Field(list(RETRIEVAL_TYPES), description="question types kept by selection")
    n_candidates: int = Field(5, ge=1, description="trajectories generated per question before self-refinement")
    temperature: float = Field(0.7, ge=0, description="sampling temperature of the candidates")
    send_images: bool = Field(True, description="attach the picture to the LLM prompts (an LMM endpoint)")
    evidence_support: Literal["names", "answer", "none"] = Field(
        "names",
        description="names: every capitalised name after a search must occur in its evidence; answer: the "
        "gold answer must occur in some evidence; none: answer correctness only",
    )
    batch_size: int = Field(16, ge=1, description="questions per part file (the unit of resume)")
    engine: Literal["sequential", "ray"] = "sequential"
    ray_address: str | None = Field(None, description="a Ray cluster (or 'auto'); null = a local Ray")
    ray_workers: int = Field(2, ge=1)
    ray_cpus_per_worker: float = Field(0.5, gt=0, description="fractional on small machines (see Ray's deadlock)")
    storage: StorageConfig = StorageConfig()

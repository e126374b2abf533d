"""Decode options: the paper's baselines and ablations (Tables 1, 6, 7) as one validated config.

    DecodeOptions()                                  # full PixSearch: model-driven searches, all modalities
    DecodeOptions(mode="no_search")                  # B = 0: `<search>` is masked out of the logits
    DecodeOptions(mode="text_question")              # the question is the query; evidence prepended, then B = 0
    DecodeOptions(mode="whole_image")                # the image is the query; evidence prepended, then B = 0
    DecodeOptions(max_searches=2)                    # search budget B (Table 7)
    DecodeOptions(modalities="no_region")            # allowed query types (Table 6); also a list: ["text"]
    DecodeOptions(kv_cache=False)                    # the competitors' method: re-encode the context per hop
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pixsearch_core.config import Config

Modality = Literal["region", "image", "text"]
MODALITIES: tuple[str, ...] = ("region", "image", "text")
MODES: tuple[str, ...] = ("full", "no_search", "text_question", "whole_image")

#: the query-type ablations of Table 6, by name
ABLATIONS: dict[str, tuple[str, ...]] = {
    "all": MODALITIES,
    "no_region": ("image", "text"),
    "no_text": ("region", "image"),
    "no_image": ("region", "text"),
    "only_region": ("region",),
    "only_text": ("text",),
    "only_image": ("image",),
}


class DecodeOptions(Config):
    """How `SearchInterleavedDecoder` decodes. Every paper baseline and ablation is a value of these fields."""

    mode: Literal["full", "no_search", "text_question", "whole_image"] = "full"
    max_searches: int | None = Field(None, ge=0, description="search budget B; None = unlimited")
    modalities: tuple[Modality, ...] = Field(MODALITIES, description=f"allowed query types or one of {list(ABLATIONS)}")
    max_new_tokens: int = Field(256, ge=1, description="generated (not forced) tokens per row")
    top_k: int = Field(3, ge=1, description="evidence passages per search")
    max_passage_tokens: int = Field(64, ge=1, description="tokens kept per passage in the information block")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    seed: int = 0
    kv_cache: bool = Field(True, description="False: re-encode the whole context after every hop (baseline)")

    @field_validator("modalities", mode="before")
    @classmethod
    def _named_ablation(cls, value):
        if isinstance(value, str):
            if value not in ABLATIONS:
                raise ValueError(f"unknown modality ablation {value!r}; allowed: {', '.join(ABLATIONS)}")
            return ABLATIONS[value]
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError(f"modalities must allow at least one of {MODALITIES} (use mode='no_search' for none)")
        return tuple(value) if isinstance(value, list) else value

    @property
    def budget(self) -> int | None:
        """Searches the model may open itself: 0 for the no-search and fixed-query baselines."""
        return 0 if self.mode != "full" else self.max_searches

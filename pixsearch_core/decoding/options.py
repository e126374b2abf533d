"""Decode options: the paper's baselines and ablations (Tables 1, 6, 7) as one validated config.

    DecodeOptions()                                  # full PixSearch: model-driven searches, all modalities
    DecodeOptions(mode="no_search")                  # B = 0: `<search>` is masked out of the logits
    DecodeOptions(mode="text_question")              # the question is the query; evidence prepended, then B = 0
    DecodeOptions(mode="whole_image")                # the image is the query; evidence prepended, then B = 0
    DecodeOptions(max_searches=2)                    # search budget B (Table 7)
    DecodeOptions(modalities="no_region")            # allowed query types (Table 6); also a list: ["text"]
    DecodeOptions(kv_cache=False)                    # the competitors' method: re-encode the context per hop

The named modes of `pixsearch eval run --mode` are listed here, once (`mode_fields`, `mode_name`, `MODE_NAMES`):

    full                       PixSearch_Full: model-driven searches, every query modality, unbounded
    no_search                  B = 0
    text_question | whole_image  the fixed-query baselines (the question / the whole image is the query)
    no_region | no_text | no_image | only_region | only_text | only_image   Table 6 (allowed query modalities)
    budget1, budget2, ...      Table 7 (at most N searches)
"""

from __future__ import annotations

import re
from typing import Any, Literal

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


#: the decode fields a mode sets (a mode sets all three: the ones it does not name keep their defaults)
MODE_FIELDS: tuple[str, ...] = ("mode", "modalities", "max_searches")
#: every mode name `eval run --mode` takes; budget<N> stands for budget1, budget2, ...
MODE_NAMES: tuple[str, ...] = (*MODES, *(a for a in ABLATIONS if a != "all"), "budget<N>")
_BUDGET = re.compile(r"^budget(\d+)$")


def mode_fields(name: str) -> dict[str, Any]:
    """The decode fields a mode name sets, e.g. budget2 -> {"mode": "full", "max_searches": 2}; unknown names raise
    ValueError naming the allowed ones."""
    if name in MODES:
        return {"mode": name}
    if name in ABLATIONS and name != "all":
        return {"mode": "full", "modalities": name}
    m = _BUDGET.match(name)
    if m:
        return {"mode": "full", "max_searches": int(m.group(1))}
    raise ValueError(f"unknown mode {name!r}; allowed: {', '.join(MODE_NAMES)} (e.g. budget2)")


def mode_name(options: DecodeOptions) -> str:
    """The mode name of decode options (the inverse of `mode_fields`); `custom` when no single name fits."""
    if options.mode != "full":
        plain = options.max_searches is None and set(options.modalities) == set(MODALITIES)
        return options.mode if plain else "custom"
    ablation = [a for a, allowed in ABLATIONS.items() if set(allowed) == set(options.modalities)]
    if options.max_searches is None:
        return "full" if ablation == ["all"] else ablation[0] if ablation else "custom"
    return f"budget{options.max_searches}" if ablation == ["all"] else "custom"


class DecodeOptions(Config):
    """How `SearchInterleavedDecoder` decodes. Every paper baseline and ablation is a value of these fields."""

    mode: Literal[MODES] = "full"  # type: ignore[valid-type]  (the names of MODES, listed once)
    max_searches: int | None = Field(None, ge=0, description="search budget B; None = unlimited")
    modalities: tuple[Modality, ...] = Field(MODALITIES, description=f"allowed query types or one of {list(ABLATIONS)}")
    max_new_tokens: int = Field(256, ge=1, description="generated (not forced) tokens per row")
    top_k: int = Field(3, ge=1, description="evidence passages per search")
    max_passage_tokens: int = Field(64, ge=1, description="tokens kept per passage in the information block")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    seed: int = 0
    kv_cache: bool = Field(True, description="False: re-encode the whole context after every hop (baseline)")
    stop_at_turn_markers: bool = Field(
        True,
        description="a generated sequence or chat-turn marker of the LM's tokenizer (its BOS, ChatML's "
        "<|im_start|>, <|endoftext|>, ...) ends the answer like EOS (policy.turn_markers)",
    )
    restate_question: bool = Field(
        False,
        description="end every forced <information> block with the question again (prompts.restate; not in the "
        "paper), for a model trained with data.restate_question=true",
    )

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

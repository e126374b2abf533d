"""One item through stage-2 construction: select -> decompose -> generate N -> refine -> assign query types ->
search for real -> verify. The result is a training record in the format stage-2 training reads
(`training/readers/chat.py`: id, image, question, response, query_types, entity_span, mask) or the stage at which
the item dropped out, with the reason. A response that answers "I don't know" is kept only when no evidence block
holds a gold answer: that is how abstention targets enter the data (questions the retriever cannot answer).

Evidence is real: each `<search>` marker of the chosen response becomes `<search>PAYLOAD</search>` followed by what
the project's own retriever returns for that query, formatted exactly as the decoder forces it
(`decoding.queries.format_information`, with the same top-k, passage budget and tokenizer). A REGION query crops
the item's gold mask (or box); an item with neither gets an IMAGE query instead (recorded as `region_fallback`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixsearch_core.metrics.crag import is_missing
from pixsearch_core.metrics.relaxed import relaxed_exact_match
from pixsearch_core.stage2.backends import MARK, Malformed, best_placement
from pixsearch_core.stage2.config import Stage2Config
from pixsearch_core.stage2.sources import Item

log = logging.getLogger(__name__)

#: the funnel, in order: an item is counted at every stage it passes
STAGES = ("read", "selected", "decomposed", "generated", "refined", "assigned", "searched", "verified")
_NAME = re.compile(r"\b[A-Z][\w'-]{2,}")
_NOT_NAMES = {"The", "This", "That", "These", "Those", "It", "Its", "Answer", "He", "She", "They", "Doc", "Yes", "No"}


@dataclass
class Outcome:
    item_id: str
    source: str
    reached: str  # the last stage passed
    record: dict[str, Any] | None = None
    reason: str | None = None  # why it stopped (None when verified)
    usage: dict[str, int] = field(default_factory=dict)


def final_answer(response: str) -> str:
    """The text after the last 'Answer:' (the SynthCRAG and prompt convention), else the last sentence."""
    tail = response.rsplit("Answer:", 1)
    if len(tail) == 2:
        return tail[1].strip()
    text = re.sub(r"<information>.*?</information>", "", response, flags=re.S)
    return re.split(r"(?<=[.!?])\s+", text.strip())[-1]


def names(text: str) -> set[str]:
    return {m for m in _NAME.findall(text) if m not in _NOT_NAMES}


class Builder:
    """Turns items into records; owns a backend, a searcher and the decoder's evidence formatting."""

    def __init__(self, cfg: Stage2Config, backend, searcher, tokenizer, store, prompt_version: str = ""):
        self.cfg, self.backend, self.searcher, self.tokenizer, self.store = cfg, backend, searcher, tokenizer, store
        self.prompt_version = prompt_version

    def build(self, item: Item) -> Outcome:
        reached = "read"
        try:
            qtype, retrieval = self.backend.select(item)
            if qtype not in self.cfg.keep_types:
                return Outcome(item.id, item.source, reached, reason=f"question type {qtype!r} is not kept")
            reached = "selected"
            subqs = self.backend.decompose(item)
            reached = "decomposed"
            candidates = [c for c in self.backend.generate(item, subqs, self.cfg.n_candidates) if c]
            if not candidates:
                return Outcome(item.id, item.source, reached, reason="no candidate response")
            reached = "generated"
            best = self.backend.refine(item, subqs, candidates)
            response = candidates[best]
            best_placement(subqs, [response])  # the chosen one must place its searches sensibly
            reached = "refined"
            queries = self.backend.assign(item, response)
            reached = "assigned"
            full, searches = self._search(item, response, queries)
            reached = "searched"
            problem = self._verify(item, full, searches)
            if problem:
                return Outcome(item.id, item.source, reached, reason=problem)
            return Outcome(item.id, item.source, "verified", record=self._record(item, qtype, full, searches))
        except Malformed as e:
            return Outcome(item.id, item.source, reached, reason=f"malformed model output: {e}")

    # ---------------------------------------------------------------- search
    def _query(self, item: Item, kind: str, text: str):
        from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery

        if kind == "TEXT":
            return TextQuery(text), "TEXT"
        image = self._image(item)
        if image is None:
            raise Malformed(f"a {kind} search needs the picture, and item {item.id} has none")
        if kind == "REGION":
            mask = self._mask(item, image.size)
            if mask is not None:
                return RegionQuery(image, mask), "REGION"
        return ImageQuery(image), "IMAGE"

    def _image(self, item: Item):
        if not item.image:
            return None
        import io

        from PIL import Image

        return Image.open(io.BytesIO(self.store.get_bytes(item.image))).convert("RGB")

    def _mask(self, item: Item, size: tuple[int, int]) -> np.ndarray | None:
        if item.mask:
            from pixsearch_core.masks import read_mask_png

            return read_mask_png(self.store, item.mask)
        if item.box:
            x0, y0, x1, y1 = (int(v) for v in item.box)
            mask = np.zeros((size[1], size[0]), bool)
            mask[max(y0, 0) : y1, max(x0, 0) : x1] = True
            return mask
        return None

    def _search(self, item: Item, response: str, queries: list[tuple[str, str]]) -> tuple[str, list[dict]]:
        from pixsearch_core.decoding.queries import format_information

        pieces = response.split(MARK)
        out, searches = [pieces[0]], []
        for (kind, text), tail in zip(queries, pieces[1:]):
            query, used = self._query(item, kind, text)
            evidence = self.searcher.search(query, self.cfg.retrieval.retriever.k)
            block = format_information(
                evidence, self.tokenizer, self.cfg.retrieval.retriever.k, self.cfg.retrieval.max_passage_tokens
            )
            payload = {"REGION": "<region>", "IMAGE": "<image>"}.get(used, text)
            out.append(f"<search>{payload}</search>{block}{tail}")
            searches.append(
                {
                    "asked": kind,
                    "type": used,
                    "query": text,
                    "information": block,
                    "evidence_ids": [e.doc_id for e in evidence[: self.cfg.retrieval.retriever.k]],
                    "continuation": tail,
                    "region_fallback": kind == "REGION" and used != "REGION",
                }
            )
        return "".join(out), searches

    # ---------------------------------------------------------------- verify
    def _verify(self, item: Item, response: str, searches: list[dict]) -> str | None:
        answer = final_answer(response)
        if is_missing(answer):  # an abstention is a target only when the evidence really lacks the answer
            held = [g for g in item.answers for s in searches if g.lower() in s["information"].lower()]
            if held or not searches:
                return (
                    f"abstains although the evidence holds the answer {held[0]!r}"
                    if held
                    else "abstains without searching"
                )
        elif not any(relaxed_exact_match(answer, g) for g in item.answers):
            return f"answer {answer!r} does not match the gold answers {item.answers}"
        mode = self.cfg.evidence_support
        if (
            mode == "answer"
            and searches
            and not is_missing(answer)
            and not any(any(g.lower() in s["information"].lower() for g in item.answers) for s in searches)
        ):
            return "no evidence block holds the gold answer"
        if mode == "names":
            for i, s in enumerate(searches):
                claim = re.sub(r"^\s*Answer:\s*", "", s["continuation"].split("<search>")[0])
                missing = sorted(n for n in names(claim) if n.lower() not in s["information"].lower())
                if missing:
                    return f"search {i + 1} ({s['type']}) evidence does not name {missing} that the response states"
        return None

    def _record(self, item: Item, qtype: str, response: str, searches: list[dict]) -> dict[str, Any]:
        span = next((s["query"] for s in searches if s["type"] == "REGION"), "")
        return {
            "id": item.id,
            "image": item.image,
            "question": item.question,
            "response": response,
            "query_types": [s["type"] for s in searches],
            "entity_span": span,
            "mask": item.mask if span else None,
            "answers": item.answers,
            "source": item.source,
            "question_type": qtype,
            "queries": [s["query"] for s in searches],
            "evidence_ids": [s["evidence_ids"] for s in searches],
            "region_fallbacks": sum(s["region_fallback"] for s in searches),
            "llm": self.backend.label,
            "prompt_version": self.prompt_version,
            "abstains": is_missing(final_answer(response)),
        }

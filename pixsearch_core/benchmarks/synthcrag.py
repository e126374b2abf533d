"""SynthCRAG (pixsearch_core.synthcrag): the generated knowledge world, scored the CRAG-MM way.

Gold: the `benchmark/<split>.jsonl` written by `write_synthcrag` (a world directory or the file itself); rows carry
CRAG-MM-like fields (`interaction_id`, `query`, `ans_full`, `egocentric`) plus `image`, `gold_mask`, `target_box`,
`question_type` and the gold trajectory. Prediction id: `interaction_id`. Scores and aggregation are CRAG-MM's
(accuracy, missing, hallucination, truthfulness; overall, egocentric, non-egocentric); with no judge, accuracy is
exact match after the official lower/strip normalisation. SynthCRAG trajectories end with "Answer: <answer>": the
text after the last "Answer:" is what is scored (the whole prediction when it has none). Image and mask references
are relative to the world root (`synthcrag.paths`); examples carry them resolved. `answerable` is False on questions
whose evidence lacks the answer (their gold trajectory says "I don't know"; `ans_full` is the true fact).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from pixsearch_core.benchmarks.base import Example, read_jsonl, require, resolve
from pixsearch_core.benchmarks.crag_mm import CragMM
from pixsearch_core.benchmarks.refcoco import ReferScored
from pixsearch_core.masks import read_mask_png
from pixsearch_core.registry import register
from pixsearch_core.synthcrag.paths import reference_base
from pixsearch_core.synthcrag.paths import resolve as resolve_ref

ANSWER_MARK = "Answer:"


def _split_file(store, path: str, split: str) -> tuple[str, str]:
    """(the split's benchmark JSONL under a world directory, or the file itself; the base its references resolve
    against)."""
    uri = resolve(store, path, [f"benchmark/{split}.jsonl", f"{split}.jsonl"])
    return uri, reference_base(store, uri)


@register("benchmark", "synthcrag")
class SynthCRAG(CragMM):
    name = "synthcrag"
    default_split = "test"

    def load(self, path, split=None):
        uri, base = _split_file(self.store, path, split or self.default_split)
        for lineno, rec in read_jsonl(self.store, uri):
            where = f"{uri} line {lineno + 1}"
            yield Example(
                id=str(require(rec, "interaction_id", where)),
                question=require(rec, "query", where, str),
                answers=[require(rec, "ans_full", where, str)],
                image=resolve_ref(base, require(rec, "image", where, str)),
                mask=resolve_ref(base, rec["gold_mask"]) if rec.get("gold_mask") else None,
                metadata={
                    "egocentric": bool(require(rec, "egocentric", where, bool)),
                    "question_type": rec.get("question_type"),
                    "target_box": rec.get("target_box"),
                    "entity_span": rec.get("entity_span"),
                    "gold_response": rec.get("response"),
                    "query_types": rec.get("query_types", []),
                    "answerable": rec.get("answerable", True),
                    "gold_doc_id": rec.get("entity_id"),  # the target's document (the report's retrieval table)
                },
            )

    def score(self, example, prediction):
        if isinstance(prediction, str) and ANSWER_MARK in prediction:
            prediction = prediction.rsplit(ANSWER_MARK, 1)[1].strip()
        return super().score(example, prediction)


GROUPS = ("", "ego", "non_ego")


@register("benchmark", "synthcrag_refer")
class SynthCRAGRefer(ReferScored):
    """SynthCRAG as a referring-segmentation benchmark (scored as RefCOCO: gIoU / cIoU): one example per scene of
    the split whose questions search it (a `<region>` or `<image>` search: they carry the target's referring
    phrase, `entity_span`, and its gold mask). Prediction id: the scene's file stem. Splits: "test", "train", or
    "ego/test" (the default: egocentric scenes only, a small target among larger distractors) and
    "non_ego/test" (the target alone)."""

    name = "synthcrag_refer"
    id_field = "scene"
    default_split = "ego/test"
    images_resolved = True  # Example.image is already the image's path or URI (resolved against the world root)

    def load(self, path, split=None):
        group, _, split = (split or self.default_split).rpartition("/")
        if group not in GROUPS:
            raise ValueError(f"synthcrag_refer split {group}/{split}: the group must be one of ego, non_ego (or none)")
        uri, base = _split_file(self.store, path, split)
        seen: set[str] = set()
        for lineno, rec in read_jsonl(self.store, uri):
            where = f"{uri} line {lineno + 1}"
            image = require(rec, "image", where, str)
            ego = bool(require(rec, "egocentric", where, bool))
            if not rec.get("query_types") or not rec.get("entity_span") or not rec.get("gold_mask") or image in seen:
                continue  # no visual search (colour / count questions), or a scene already taken
            if (group == "ego" and not ego) or (group == "non_ego" and ego):
                continue
            seen.add(image)
            mask_uri = resolve_ref(base, require(rec, "gold_mask", where, str))
            yield Example(
                id=PurePosixPath(image).stem,
                question=require(rec, "entity_span", where, str).strip().lower(),
                image=resolve_ref(base, image),
                mask=lambda u=mask_uri: read_mask_png(self.store, u).astype(np.uint8),
                metadata={"egocentric": ego, "interaction_id": rec.get("interaction_id")},
            )

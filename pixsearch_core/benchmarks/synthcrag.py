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

from pixsearch_core.benchmarks.base import Example, read_jsonl, require, resolve
from pixsearch_core.benchmarks.crag_mm import CragMM
from pixsearch_core.registry import register
from pixsearch_core.synthcrag.paths import reference_base
from pixsearch_core.synthcrag.paths import resolve as resolve_ref

ANSWER_MARK = "Answer:"


@register("benchmark", "synthcrag")
class SynthCRAG(CragMM):
    name = "synthcrag"
    default_split = "test"

    def load(self, path, split=None):
        split = split or self.default_split
        uri = resolve(self.store, path, [f"benchmark/{split}.jsonl", f"{split}.jsonl"])
        base = reference_base(self.store, uri)
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
                },
            )

    def score(self, example, prediction):
        if isinstance(prediction, str) and ANSWER_MARK in prediction:
            prediction = prediction.rsplit(ANSWER_MARK, 1)[1].strip()
        return super().score(example, prediction)

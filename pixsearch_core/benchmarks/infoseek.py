"""InfoSeek (docs/metrics.md §5): JSONL `infoseek_{split}.jsonl` lines {"data_id", "image_id", "question", "answer",
"answer_eval", "data_split"}, question types from `infoseek_{split}_qtype.jsonl` lines {"data_id",
"question_type": "String"|"Numerical"|"Time"} (or a "question_type" field on the record itself).

Gold: a directory holding both files for the split ("val" by default), or the annotation file with its qtype
file beside it. Prediction id: `data_id`. accuracy = the official final score (harmonic mean of the
unseen-question and unseen-entity split scores, with the official 2-place rounding) as a fraction; em / f1 /
relaxed_* are means against `answer_eval` (against `answer` for Numerical questions). Missing predictions are left
out of every denominator, as the official script does."""

from __future__ import annotations

from pixsearch_core.benchmarks._textqa import KEYS, TextQABenchmark
from pixsearch_core.benchmarks.base import BadRecordError, Example, mean, read_jsonl, require, resolve
from pixsearch_core.metrics.infoseek import (
    QUESTION_TYPES,
    harmonic_mean,
    infoseek_correct,
    is_unseen_question,
    split_score,
)
from pixsearch_core.registry import register


@register("benchmark", "infoseek")
class InfoSeek(TextQABenchmark):
    name = "infoseek"
    id_field = "data_id"
    missing = "ignore"
    keys = (*KEYS, "accuracy")

    def _qtypes(self, uri: str) -> dict[str, str]:
        base = uri[: -len(".jsonl")] if uri.endswith(".jsonl") else uri
        qtype_uri = f"{base}_qtype.jsonl"
        if not self.store.exists(qtype_uri):
            return {}
        return {
            str(require(r, "data_id", f"{qtype_uri} line {n + 1}")): require(
                r, "question_type", f"{qtype_uri} line {n + 1}", str
            )
            for n, r in read_jsonl(self.store, qtype_uri)
        }

    def load(self, path, split=None):
        split = split or self.default_split
        uri = resolve(self.store, path, [f"infoseek_{split}.jsonl"])
        qtypes = self._qtypes(uri)
        for lineno, rec in read_jsonl(self.store, uri):
            where = f"{uri} line {lineno + 1}"
            data_id = str(require(rec, "data_id", where))
            qtype = rec.get("question_type") or qtypes.get(data_id)
            if not qtype or qtype.lower() not in QUESTION_TYPES:
                raise BadRecordError(
                    f"{where} (data_id {data_id!r}): question_type {qtype!r} missing or unknown; "
                    f"allowed: String, Numerical, Time (from the record or its _qtype.jsonl file)"
                )
            answer_eval = require(rec, "answer_eval", where, (list, dict))
            numerical = qtype.lower() == "numerical"
            answers = require(rec, "answer", where, list) if numerical else answer_eval
            yield Example(
                id=data_id,
                question=require(rec, "question", where, str),
                answers=[str(a) for a in answers],
                image=rec.get("image_id"),
                metadata={
                    "question_type": qtype,
                    "answer_eval": answer_eval,
                    "data_split": require(rec, "data_split", where, str),
                },
            )

    def extra_scores(self, example, prediction):
        meta = example.metadata
        return {
            "accuracy": infoseek_correct(prediction, meta["answer_eval"], meta["question_type"]),
            "unseen_question": is_unseen_question(meta["data_split"]),
        }

    def aggregate(self, scores):
        out = super().aggregate(scores)
        uq = split_score([s["accuracy"] for s in scores if s["unseen_question"]])
        ue = split_score([s["accuracy"] for s in scores if not s["unseen_question"]])
        out["accuracy"] = round(harmonic_mean(uq, ue), 2) / 100
        out["accuracy_unseen_question"], out["accuracy_unseen_entity"] = uq / 100, ue / 100
        out["accuracy_pooled"] = mean([s["accuracy"] for s in scores])
        return out

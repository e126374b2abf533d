"""TextVQA v0.5.1 (docs/metrics.md §7): `TextVQA_0.5.1_{split}.json` = {"data": [{"question_id" (int), "question",
"image_id", "answers": [10 strings], ...}]}; split "val" by default. Prediction id: `question_id` (as a string).
accuracy: the m4c soft accuracy LLaVA reports; em / f1 / relaxed_*: max over the 10 answers."""

from __future__ import annotations

from pixsearch_core.benchmarks._textqa import KEYS, TextQABenchmark
from pixsearch_core.benchmarks.base import BadRecordError, Example, read_json, require, resolve
from pixsearch_core.metrics.textvqa import textvqa_accuracy
from pixsearch_core.registry import register


@register("benchmark", "textvqa")
class TextVQA(TextQABenchmark):
    name = "textvqa"
    id_field = "question_id"
    keys = (*KEYS, "accuracy")

    def load(self, path, split=None):
        split = split or self.default_split
        uri = resolve(self.store, path, [f"TextVQA_0.5.1_{split}.json"])
        doc = read_json(self.store, uri)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise BadRecordError(f"{uri}: expected an object with a 'data' list (TextVQA 0.5.1 layout)")
        for i, rec in enumerate(doc["data"]):
            where = f"{uri} data[{i}]"
            qid = require(rec, "question_id", where)
            answers = require(rec, "answers", f"{where} (question_id {qid})", list)
            yield Example(
                id=str(qid),
                question=require(rec, "question", where, str),
                answers=[str(a) for a in answers],
                image=rec.get("image_id"),
                metadata={"set_name": rec.get("set_name")},
            )

    def extra_scores(self, example, prediction):
        return {"accuracy": textvqa_accuracy(prediction, example.answers)}

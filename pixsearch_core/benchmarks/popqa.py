"""PopQA (docs/metrics.md §4.3): `popQA.tsv` (tab-separated, header row) with columns id, question,
possible_answers (a JSON-encoded list), s_pop, prop, ... Split "test" (the only one). Prediction id: `id`.
accuracy: the official `run_model.py` raw substring test; em / f1: SQuAD, max over possible_answers. A row whose
possible_answers is an empty list is scored as wrong, as the official script does (`any([])` is False)."""

from __future__ import annotations

import csv
import io
import json

from pixsearch_core.benchmarks._textqa import KEYS, TextQABenchmark
from pixsearch_core.benchmarks.base import BadRecordError, Example, require, resolve
from pixsearch_core.metrics.textqa import popqa_accuracy
from pixsearch_core.registry import register


@register("benchmark", "popqa")
class PopQA(TextQABenchmark):
    name = "popqa"
    default_split = "test"
    keys = (*KEYS, "accuracy")

    def load(self, path, split=None):
        uri = resolve(self.store, path, ["popQA.tsv", "data/popQA.tsv"])
        reader = csv.DictReader(io.StringIO(self.store.get_bytes(uri).decode("utf-8")), delimiter="\t")
        for i, rec in enumerate(reader):
            where = f"{uri} row {i + 1} (id {rec.get('id')!r})"
            raw = require(rec, "possible_answers", where, str)
            try:
                answers = json.loads(raw)
            except json.JSONDecodeError as e:
                raise BadRecordError(f"{where}: field 'possible_answers' is not a JSON list: {e}") from None
            if not isinstance(answers, list):
                raise BadRecordError(f"{where}: field 'possible_answers' should be a JSON list, got {raw!r:.80}")
            yield Example(
                id=str(require(rec, "id", where)),
                question=require(rec, "question", where, str),
                answers=[str(a) for a in answers],
                metadata={"prop": rec.get("prop"), "s_pop": rec.get("s_pop")},
            )

    def score(self, example, prediction):
        if not example.answers:  # the official script: no answer can be contained -> wrong
            self.check_prediction(example, prediction)
            return self.zero_score(example)
        return super().score(example, prediction)

    def extra_scores(self, example, prediction):
        return {"accuracy": popqa_accuracy(prediction, example.answers)}

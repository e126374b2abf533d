"""The shared scorer of the text answer benchmarks: the dataset's official EM / F1 (`em`, `f1`), the paper's
relaxed EM / F1 of kim-ji-2024-finer (`relaxed_em`, `relaxed_f1`), each max over gold answers, and, where the
official metric is an accuracy, `accuracy`. Aggregation is the mean over scored examples (fractions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pixsearch_core.benchmarks.base import BadRecordError, Benchmark, Example, mean
from pixsearch_core.metrics.relaxed import relaxed_scores
from pixsearch_core.metrics.squad import exact_match, f1, max_over_golds

KEYS = ("em", "f1", "relaxed_em", "relaxed_f1")


class TextQABenchmark(Benchmark):
    em_fn: ClassVar[Callable[[str, str], float]] = staticmethod(exact_match)
    f1_fn: ClassVar[Callable[[str, str], float]] = staticmethod(f1)
    keys: ClassVar[tuple[str, ...]] = KEYS

    def __init__(self, store=None, strip_answer_prefix: bool = True, **options: Any):
        super().__init__(store, **options)
        self.strip_answer_prefix = strip_answer_prefix

    def golds(self, example: Example) -> list[str]:
        if not example.answers:
            raise BadRecordError(f"{self.name} example {example.id!r}: no gold answers")
        return example.answers

    def check_prediction(self, example: Example, prediction: Any) -> str:
        if not isinstance(prediction, str):
            raise BadRecordError(
                f"{self.name} prediction for id {example.id!r} should be a string, "
                f"got {type(prediction).__name__}: {prediction!r:.80}"
            )
        return prediction

    def score(self, example: Example, prediction: Any) -> dict[str, Any]:
        pred = self.check_prediction(example, prediction)
        golds = self.golds(example)
        out = {"em": max_over_golds(self.em_fn, pred, golds), "f1": max_over_golds(self.f1_fn, pred, golds)}
        out.update(relaxed_scores(pred, golds, strip_prefix=self.strip_answer_prefix))
        out.update(self.extra_scores(example, pred))
        return out

    def extra_scores(self, example: Example, prediction: str) -> dict[str, Any]:
        return {}

    def zero_score(self, example: Example) -> dict[str, Any]:
        return {k: 0.0 for k in self.keys}

    def aggregate(self, scores: list[dict[str, Any]]) -> dict[str, Any]:
        out = {k: mean([s[k] for s in scores]) for k in self.keys}
        out["n"] = len(scores)
        return out

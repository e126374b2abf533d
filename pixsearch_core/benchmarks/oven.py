"""OVEN (docs/metrics.md §6): JSONL `oven_entity_{split}.jsonl` and `oven_query_{split}.jsonl` lines {"data_id",
"image_id", "question", "entity_id", "entity_text", "data_split"}.

Gold: a directory holding either or both files for the split ("val" by default), or one file. Prediction id:
`data_id`; the prediction is a string. accuracy = the official final score (HM of the query and entity scores,
each the HM of seen / unseen split accuracies) as a fraction, where a prediction is correct if it IS the gold
Wikidata QID (e.g. "Q1141409"): map generated names to QIDs before scoring. em / f1 / relaxed_* compare the
prediction with `entity_text`. A missing prediction counts as wrong (the default rule)."""

from __future__ import annotations

from collections import defaultdict

from pixsearch_core.benchmarks._textqa import KEYS, TextQABenchmark
from pixsearch_core.benchmarks.base import Example, read_jsonl, require
from pixsearch_core.metrics.oven import oven_correct, oven_scores
from pixsearch_core.registry import register
from pixsearch_core.storage import join


@register("benchmark", "oven")
class OVEN(TextQABenchmark):
    name = "oven"
    id_field = "data_id"
    keys = (*KEYS, "accuracy")

    def _files(self, path: str, split: str) -> list[str]:
        if self.store.exists(path):
            return [path]
        found = [join(path, f"oven_{task}_{split}.jsonl") for task in ("entity", "query")]
        found = [u for u in found if self.store.exists(u)]
        if not found:
            raise FileNotFoundError(
                f"no gold file at {path}; looked for oven_entity_{split}.jsonl and oven_query_{split}.jsonl"
            )
        return found

    def load(self, path, split=None):
        for uri in self._files(path, split or self.default_split):
            for lineno, rec in read_jsonl(self.store, uri):
                where = f"{uri} line {lineno + 1}"
                yield Example(
                    id=str(require(rec, "data_id", where)),
                    question=require(rec, "question", where, str),
                    answers=[require(rec, "entity_text", where, str)],
                    image=rec.get("image_id"),
                    metadata={
                        "entity_id": require(rec, "entity_id", where, str),
                        "data_split": require(rec, "data_split", where, str),
                    },
                )

    def extra_scores(self, example, prediction):
        return {
            "accuracy": oven_correct(prediction, example.metadata["entity_id"]),
            "data_split": example.metadata["data_split"],
        }

    def zero_score(self, example):
        return {**super().zero_score(example), "data_split": example.metadata["data_split"]}

    def aggregate(self, scores):
        out = super().aggregate(scores)
        by_split: dict[str, list[float]] = defaultdict(list)
        for s in scores:
            by_split[s["data_split"]].append(s["accuracy"])
        official = oven_scores(by_split)
        out["accuracy"] = round(official["final"], 2) / 100
        for key in ("query_score", "entity_score", "query_seen", "query_unseen", "entity_seen", "entity_unseen"):
            out[f"accuracy_{key}"] = official[key] / 100
        return out

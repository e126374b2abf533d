"""HotpotQA (docs/metrics.md §4.1): a JSON list of {"_id", "question", "answer", "type", "level", ...}.

Gold: `hotpot_dev_distractor_v1.json` (split "dev_distractor", alias "dev"), `hotpot_dev_fullwiki_v1.json`
("dev_fullwiki"), `hotpot_train_v1.1.json` ("train"), or the file itself. Prediction id: `_id`.
em / f1: `hotpot_evaluate_v1.py` (SQuAD EM; F1 with the yes/no/noanswer rule); a missing prediction scores 0
(the official script averages over the gold set)."""

from __future__ import annotations

from pixsearch_core.benchmarks._textqa import TextQABenchmark
from pixsearch_core.benchmarks.base import Example, read_json, require, resolve
from pixsearch_core.metrics.textqa import hotpot_f1
from pixsearch_core.registry import register

FILES = {
    "dev_distractor": "hotpot_dev_distractor_v1.json",
    "dev": "hotpot_dev_distractor_v1.json",
    "dev_fullwiki": "hotpot_dev_fullwiki_v1.json",
    "train": "hotpot_train_v1.1.json",
}


@register("benchmark", "hotpotqa")
class HotpotQA(TextQABenchmark):
    name = "hotpotqa"
    id_field = "_id"
    default_split = "dev_distractor"
    missing = "zero"
    f1_fn = staticmethod(hotpot_f1)

    def load(self, path, split=None):
        split = split or self.default_split
        if split not in FILES:
            raise ValueError(f"hotpotqa split {split!r} unknown; allowed: {', '.join(FILES)}")
        uri = resolve(self.store, path, [FILES[split]])
        for i, rec in enumerate(read_json(self.store, uri)):
            where = f"{uri} record {i}"
            yield Example(
                id=str(require(rec, "_id", where)),
                question=require(rec, "question", where, str),
                answers=[require(rec, "answer", where, str)],
                metadata={"type": rec.get("type"), "level": rec.get("level")},
            )

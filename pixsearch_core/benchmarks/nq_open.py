"""NQ-open (docs/metrics.md §4.2): JSONL lines {"question", "answer": [str, ...]}.

Gold: `NQ-open.dev.jsonl` (split "dev", what RAG papers call the NQ test set), `NQ-open.train.jsonl` ("train"),
`NQ-open.efficientqa.dev.1.1.jsonl` ("efficientqa_dev"), or the file itself. The records have no id: the
prediction id is the 0-based line number, as a string ("0", "1", ...). em / f1: SQuAD, max over the answer list;
a missing prediction scores 0 (SQuAD's rule)."""

from __future__ import annotations

from pixsearch_core.benchmarks._textqa import TextQABenchmark
from pixsearch_core.benchmarks.base import Example, read_jsonl, require, resolve
from pixsearch_core.registry import register

FILES = {
    "dev": "NQ-open.dev.jsonl",
    "train": "NQ-open.train.jsonl",
    "efficientqa_dev": "NQ-open.efficientqa.dev.1.1.jsonl",
}


@register("benchmark", "nq_open")
class NQOpen(TextQABenchmark):
    name = "nq_open"
    id_field = "line number"
    default_split = "dev"
    missing = "zero"

    def load(self, path, split=None):
        split = split or self.default_split
        if split not in FILES:
            raise ValueError(f"nq_open split {split!r} unknown; allowed: {', '.join(FILES)}")
        uri = resolve(self.store, path, [FILES[split]])
        for lineno, rec in read_jsonl(self.store, uri):
            where = f"{uri} line {lineno + 1}"
            yield Example(
                id=str(lineno),
                question=require(rec, "question", where, str),
                answers=[str(a) for a in require(rec, "answer", where, list)],
            )

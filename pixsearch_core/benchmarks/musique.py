"""MuSiQue (docs/metrics.md §4.4): JSONL lines {"id", "question", "answer", "answer_aliases", "answerable", ...}.

Gold: `musique_ans_v1.0_{split}.jsonl` (split "dev" by default), `musique_full_v1.0_{split}.jsonl`, or the file
itself. Prediction id: `id`. Golds = [answer] + answer_aliases; em: SQuAD EM; f1: the SQuAD 2.0 rule (either side
empty -> both empty); only answerable instances are scored (predictions for the others are accepted and ignored)."""

from __future__ import annotations

from pixsearch_core.benchmarks._textqa import TextQABenchmark
from pixsearch_core.benchmarks.base import Example, read_jsonl, require, resolve
from pixsearch_core.metrics.squad import f1_v2
from pixsearch_core.registry import register


@register("benchmark", "musique")
class MuSiQue(TextQABenchmark):
    name = "musique"
    default_split = "dev"
    f1_fn = staticmethod(f1_v2)

    def load(self, path, split=None):
        split = split or self.default_split
        uri = resolve(self.store, path, [f"musique_ans_v1.0_{split}.jsonl", f"musique_full_v1.0_{split}.jsonl"])
        for lineno, rec in read_jsonl(self.store, uri):
            where = f"{uri} line {lineno + 1}"
            answerable = rec.get("answerable", True)
            answers = [require(rec, "answer", where, str)] if answerable else []
            answers += [str(a) for a in rec.get("answer_aliases") or []] if answerable else []
            yield Example(
                id=str(require(rec, "id", where)),
                question=require(rec, "question", where, str),
                answers=answers,
                metadata={"answerable": bool(answerable), "unscored": not answerable},
            )

"""CRAG-MM single-turn (docs/metrics.md §2): the Hugging Face dataset `crag-mm-2025/crag-mm-single-turn-public`.

Gold: a snapshot directory (parquet shards whose name starts with the split, e.g.
`data/validation-00000-of-00002.parquet`), one parquet file, or JSONL with the same row schema:
{"session_id", "image_url" (null for egocentric images), "turns": {"interaction_id": [..], "query": [..],
"domain": [..], "query_category": [..], ...}, "answers": {"interaction_id": [..], "ans_full": [..]}}
(v0.1.1's list-of-dicts layout is read too). The official SESSIONS_TO_SKIP are skipped. Split "validation" by
default. Prediction id: `interaction_id`. Egocentric = no image_url (None or "").

Scores follow the official evaluator (`metrics.crag`): with a judge, non-exact non-missing answers are judged;
with none, accuracy is exact match only. Responses are scored as given: the official 75-token Llama-3.2
truncation happens at generation time and is the producer's job. A missing prediction is an empty response."""

from __future__ import annotations

from pixsearch_core.benchmarks.base import BadRecordError, Benchmark, Example, read_jsonl, require
from pixsearch_core.metrics.crag import Judge, calculate_scores, judge_turn
from pixsearch_core.registry import register

SESSIONS_TO_SKIP = frozenset({"04d98259-27af-41b1-a7be-5798fd1b8e95", "695b4b5c-7c65-4f7b-8968-50fe10482a16"})
_COLUMNS = ["session_id", "image_url", "turns", "answers"]


def _columns(block, where: str) -> list[dict]:
    """dict-of-columns (v0.1.2) or list-of-dicts (v0.1.1) -> list of per-turn dicts."""
    if isinstance(block, list):
        return block
    if not isinstance(block, dict):
        raise BadRecordError(f"{where}: expected a dict of columns or a list of turns, got {type(block).__name__}")
    n = len(require(block, "interaction_id", where, list))
    return [{k: v[i] for k, v in block.items() if isinstance(v, list) and len(v) == n} for i in range(n)]


@register("benchmark", "crag_mm")
class CragMM(Benchmark):
    name = "crag_mm"
    id_field = "interaction_id"
    default_split = "validation"

    def __init__(self, store=None, judge: Judge | None = None, **options):
        super().__init__(store, **options)
        self.judge = judge

    def _rows(self, path: str, split: str):
        if self.store.exists(path):
            uris = [path]
        else:
            uris = [u for u in self.store.list(path) if u.rsplit("/", 1)[-1].startswith(split)
                    and u.endswith((".parquet", ".jsonl"))]
            if not uris:
                raise FileNotFoundError(f"no gold file at {path}; looked for {split}*.parquet or {split}*.jsonl")
        for uri in uris:
            if uri.endswith(".jsonl"):
                for lineno, rec in read_jsonl(self.store, uri):
                    yield f"{uri} line {lineno + 1}", rec
            else:
                table = self.store.read_parquet(uri, columns=_COLUMNS)
                for i, rec in enumerate(table.to_pylist()):
                    yield f"{uri} row {i}", rec

    def load(self, path, split=None):
        for where, rec in self._rows(path, split or self.default_split):
            session = str(require(rec, "session_id", where))
            if session in SESSIONS_TO_SKIP:
                continue
            where = f"{where} (session {session})"
            image_url = rec.get("image_url")
            gold = {a.get("interaction_id"): a for a in _columns(require(rec, "answers", where), where + " answers")}
            for turn in _columns(require(rec, "turns", where), where + " turns"):
                iid = str(require(turn, "interaction_id", where + " turns"))
                if iid not in gold:
                    raise BadRecordError(f"{where}: turn {iid!r} has no entry in 'answers'")
                yield Example(id=iid, question=require(turn, "query", f"{where} turn {iid}", str),
                              answers=[require(gold[iid], "ans_full", f"{where} answers {iid}", str)],
                              image=image_url or None,
                              metadata={"egocentric": not image_url, "session_id": session,
                                        "domain": turn.get("domain"), "query_category": turn.get("query_category")})

    def score(self, example, prediction):
        if not isinstance(prediction, str):
            raise BadRecordError(f"crag_mm prediction for id {example.id!r} should be a string, "
                                 f"got {type(prediction).__name__}")
        verdict = judge_turn(example.question, example.answers[0], prediction, self.judge)
        return {**verdict, "ego": bool(example.metadata["egocentric"])}

    def aggregate(self, scores):
        return {"all": calculate_scores(scores), "ego": calculate_scores(s for s in scores if s["ego"]),
                "non_ego": calculate_scores(s for s in scores if not s["ego"])}

"""CRAG-MM single-turn (docs/metrics.md §2): the Hugging Face dataset `crag-mm-2025/crag-mm-single-turn-public`.

Gold: a snapshot directory (parquet shards whose name starts with the split, e.g.
`data/validation-00000-of-00002.parquet`), one parquet file, or JSONL with the same row schema (single-turn and
multi-turn releases alike; a multi-turn session gives one example per turn, `metadata["turn"]` its index):
{"session_id", "image": {"bytes", "path"} (the picture; a Hugging Face Image column), "image_url" (set only when
"image" is empty; null / "" for egocentric pictures), "turns": {"interaction_id": [..], "query": [..],
"domain": [..], "query_category": [..], ...}, "answers": {"interaction_id": [..], "ans_full": [..]}}
(v0.1.1's list-of-dicts layout is read too). The official SESSIONS_TO_SKIP are skipped. Split "validation" by
default. Prediction id: `interaction_id`. Egocentric = no image_url (None or "").

Pictures (`Example.image`): with `image_cache` (an object-store prefix; `pixsearch eval run` passes
`<output>/cache/images` or `images.cache`), the bytes of `image` are written once under their sha256 and the
example points at that object; an `image` with only a `path` points at that file (relative paths resolve against
the gold file's directory); otherwise `image_url` is kept, and the eval runner fetches it through the same cache
(`pictures.PictureCache.fetch`: retries, timeout, an error record naming the URL when it cannot be had). Without
`image_cache` (scoring needs no pictures) embedded bytes are not extracted and `Example.image` is None for them.
A session with no usable picture at all gets `metadata["image_error"]` (the reason); a runner that needs pictures
records that sample as an error instead of answering it blind.

Scores follow the official evaluator (`metrics.crag`): with a judge, non-exact non-missing answers are judged;
with none, accuracy is exact match only. Responses are scored as given: the official 75-token Llama-3.2
truncation happens at generation time and is the producer's job. A missing prediction is an empty response."""

from __future__ import annotations

import base64
import logging

from pixsearch_core.benchmarks.base import BadRecordError, Benchmark, Example, read_jsonl, require
from pixsearch_core.benchmarks.pictures import PictureCache
from pixsearch_core.metrics.crag import Judge, calculate_scores, judge_turn
from pixsearch_core.registry import register
from pixsearch_core.storage import join

log = logging.getLogger(__name__)

SESSIONS_TO_SKIP = frozenset({"04d98259-27af-41b1-a7be-5798fd1b8e95", "695b4b5c-7c65-4f7b-8968-50fe10482a16"})
_COLUMNS = ("session_id", "image", "image_url", "turns", "answers")


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

    #: `pixsearch eval run` passes `image_cache` to benchmarks that declare this
    takes_image_cache = True

    def __init__(self, store=None, judge: Judge | None = None, image_cache: str | None = None, **options):
        super().__init__(store, **options)
        self.judge = judge
        self.pictures = PictureCache(self.store, image_cache) if image_cache else None

    def _rows(self, path: str, split: str):
        if self.store.exists(path):
            uris = [path]
        else:
            uris = [
                u
                for u in self.store.list(path)
                if u.rsplit("/", 1)[-1].startswith(split) and u.endswith((".parquet", ".jsonl"))
            ]
            if not uris:
                raise FileNotFoundError(f"no gold file at {path}; looked for {split}*.parquet or {split}*.jsonl")
        for uri in sorted(uris):
            if uri.endswith(".jsonl"):
                for lineno, rec in read_jsonl(self.store, uri):
                    yield uri, f"{uri} line {lineno + 1}", rec
                continue
            table = self.store.read_parquet(uri)
            table = table.select([c for c in _COLUMNS if c in table.column_names])
            i = 0
            for batch in table.to_batches(max_chunksize=64):  # pictures: never the whole file as Python objects
                for rec in batch.to_pylist():
                    yield uri, f"{uri} row {i}", rec
                    i += 1

    def _picture(self, rec: dict, where: str, gold_uri: str) -> tuple[str | None, str | None]:
        """-> (the example's image reference, or None with the reason when the session has no usable picture:
        the eval runner turns that reason into the sample's error record). See the module docstring."""
        data, path = _image_field(rec.get("image"), where)
        url = rec.get("image_url") or None
        if data is not None:
            return (self.pictures.put_bytes(data, where) if self.pictures else None), None
        if path:
            resolved = path if path.startswith("/") or "://" in path else join(gold_uri.rsplit("/", 1)[0], path)
            if self.store.exists(resolved):
                return resolved, None
            if not url:
                return None, (
                    f"{where}: 'image' has no bytes and its path {path!r} does not exist (looked at "
                    f"{resolved}), and there is no image_url"
                )
        if not url:
            return None, f"{where}: no picture: 'image' is empty and 'image_url' is {rec.get('image_url')!r}"
        return url, None

    def load(self, path, split=None):
        unextracted = 0
        for gold_uri, where, rec in self._rows(path, split or self.default_split):
            session = str(require(rec, "session_id", where))
            if session in SESSIONS_TO_SKIP:
                continue
            where = f"{where} (session {session})"
            image_url = rec.get("image_url")
            image, problem = self._picture(rec, where, gold_uri)
            unextracted += image is None and problem is None
            if problem:
                log.warning("%s", problem)
            gold = {a.get("interaction_id"): a for a in _columns(require(rec, "answers", where), where + " answers")}
            for t, turn in enumerate(_columns(require(rec, "turns", where), where + " turns")):
                iid = str(require(turn, "interaction_id", where + " turns"))
                if iid not in gold:
                    raise BadRecordError(f"{where}: turn {iid!r} has no entry in 'answers'")
                yield Example(
                    id=iid,
                    question=require(turn, "query", f"{where} turn {iid}", str),
                    answers=[require(gold[iid], "ans_full", f"{where} answers {iid}", str)],
                    image=image,
                    metadata={
                        "egocentric": not image_url,
                        "session_id": session,
                        "turn": t,
                        "domain": turn.get("domain"),
                        "query_category": turn.get("query_category"),
                        **({"image_error": problem} if problem else {}),
                    },
                )
        if unextracted:
            log.info("crag_mm: %d sessions' embedded pictures not extracted (no image_cache given)", unextracted)

    def score(self, example, prediction):
        if not isinstance(prediction, str):
            raise BadRecordError(
                f"crag_mm prediction for id {example.id!r} should be a string, got {type(prediction).__name__}"
            )
        verdict = judge_turn(example.question, example.answers[0], prediction, self.judge)
        return {**verdict, "ego": bool(example.metadata["egocentric"])}

    def aggregate(self, scores):
        return {
            "all": calculate_scores(scores),
            "ego": calculate_scores(s for s in scores if s["ego"]),
            "non_ego": calculate_scores(s for s in scores if not s["ego"]),
        }


def _image_field(value, where: str) -> tuple[bytes | None, str | None]:
    """The `image` column -> (bytes or None, path or None). Parquet: a struct {bytes, path}; JSONL: the same dict
    with base64 text for bytes, or a plain path string."""
    if value is None or value == "":
        return None, None
    if isinstance(value, str):
        return None, value
    if not isinstance(value, dict):
        raise BadRecordError(
            f"{where}: 'image' should be a {{bytes, path}} struct or a path, got {type(value).__name__}"
        )
    data, path = value.get("bytes"), value.get("path") or None
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except ValueError as e:
            raise BadRecordError(f"{where}: 'image.bytes' is text but not base64: {e}") from None
    if data is not None and not isinstance(data, (bytes, bytearray)):
        raise BadRecordError(f"{where}: 'image.bytes' should be bytes, got {type(data).__name__}")
    return (bytes(data) if data else None), path

"""Conversation sources: LLaVA-Instruct-665k JSON, referring-segmentation JSONL, and stage-2 search-interleaved
trajectories JSONL (the SynthCRAG writer's layouts; see the package docstring). Relative references resolve against
`images` when given, else the SynthCRAG world root of the file, else the file's own directory
(`synthcrag.paths.reference_base`)."""

from __future__ import annotations

import json

from pixsearch_core.jsonl import JsonlError, parse_jsonl
from pixsearch_core.masks import read_mask_png
from pixsearch_core.modeling.tokens import INFO_START
from pixsearch_core.prompts.sample import IMAGE, Sample, find_span
from pixsearch_core.synthcrag.paths import reference_base
from pixsearch_core.training.readers.common import RECORD_ERRORS, Rejected, resolve, segmentation_sample, text_field

_ROLE = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant"}


def _base(store, path: str, images: str | None) -> str:
    return images or reference_base(store, path)


def _jsonl(store, path: str):
    """(line, record) of a JSONL file; a line that is not a JSON object comes as a Rejected."""
    for n, rec in parse_jsonl(store.get_bytes(path), path, errors="yield"):
        if isinstance(rec, JsonlError):
            yield n, Rejected(f"{path}:{n}", str(rec))
        elif not isinstance(rec, dict):
            yield n, Rejected(f"{path}:{n}", f"line {n} is a JSON {type(rec).__name__}, not an object")
        else:
            yield n, rec


def _llava_sample(store, rec: dict, sid: str, base: str):
    turns = rec.get("conversations") or []
    if (
        not isinstance(turns, list)
        or any(not isinstance(t, dict) or t.get("from") not in _ROLE for t in turns)
        or len(turns) < 2
    ):
        return Rejected(sid, f"conversation {turns!r:.120}; expected 2+ turns from: human, gpt")
    conv = [{"role": _ROLE[t["from"]], "content": text_field(t, "value")} for t in turns]
    image = store.get_bytes(resolve(base, text_field(rec, "image"))) if rec.get("image") else None
    return Sample(id=sid, source="llava_instruct", stage=1, image=image, conversation=conv)


def _llava(store, path: str, images: str | None):
    base = _base(store, path, images)
    for n, rec in enumerate(json.loads(store.get_bytes(path))):
        if not isinstance(rec, dict):
            yield Rejected(f"llava-{n}", f"record {n} is a JSON {type(rec).__name__}, not an object")
            continue
        sid = f"llava-{rec.get('id', n)}"
        try:
            yield _llava_sample(store, rec, sid, base)
        except RECORD_ERRORS as e:
            yield Rejected(sid, f"{type(e).__name__}: {e}")


def _refer_jsonl(store, path: str, images: str | None):
    base = _base(store, path, images)
    for n, rec in _jsonl(store, path):
        if isinstance(rec, Rejected):
            yield rec
            continue
        sid = f"refer-{rec.get('id', n)}"
        try:
            expression = text_field(rec, "expression")
            image = store.get_bytes(resolve(base, text_field(rec, "image")))
            mask = read_mask_png(store, resolve(base, text_field(rec, "mask"))).astype("uint8")
            yield segmentation_sample(sid, "refer_jsonl", image, [expression], [mask])
        except RECORD_ERRORS as e:
            yield Rejected(sid, f"{type(e).__name__}: {e}")


def _trajectory(store, rec: dict, base: str, n: int):
    sid = str(rec.get("id", n))
    missing = [k for k in ("image", "question", "response") if not rec.get(k)]
    if missing:
        return Rejected(sid, f"missing fields {missing}")
    response, question, image = (text_field(rec, k) for k in ("response", "question", "image"))
    types = rec.get("query_types") or []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ValueError(f"field 'query_types' should be a list of strings, got {types!r:.80}")
    conv = [{"role": "user", "content": f"{IMAGE}\n{question}"}, {"role": "assistant", "content": response}]
    spans, masks = [], None
    if rec.get("entity_span") and rec.get("mask"):
        info = response.find(INFO_START)
        span = find_span(response[: info if info >= 0 else len(response)], text_field(rec, "entity_span"))
        if span is not None:  # else the entity is named only in the question: LM targets, nothing to segment
            spans, masks = (
                [(1, *span)],
                read_mask_png(store, resolve(base, text_field(rec, "mask")))[None].astype("uint8"),
            )
    return Sample(
        id=sid,
        source="trajectories",
        stage=2,
        image=store.get_bytes(resolve(base, image)),
        conversation=conv,
        spans=spans,
        masks=masks,
        query_types=list(types),
    )


def _trajectories(store, path: str, images: str | None):
    base = _base(store, path, images)
    for n, rec in _jsonl(store, path):
        if isinstance(rec, Rejected):
            yield rec
            continue
        try:
            yield _trajectory(store, rec, base, n)
        except RECORD_ERRORS as e:
            yield Rejected(str(rec.get("id", n)), f"{type(e).__name__}: {e}")


def read(reader: str, store, path: str, images: str | None = None):
    fn = {"llava_instruct": _llava, "refer_jsonl": _refer_jsonl, "trajectories": _trajectories}[reader]
    return fn(store, path, images)

"""Conversation sources: LLaVA-Instruct-665k JSON, referring-segmentation JSONL, and stage-2 search-interleaved
trajectories JSONL (the SynthCRAG writer's layouts; see the package docstring). Relative references resolve against
`images` when given, else the SynthCRAG world root of the file, else the file's own directory
(`synthcrag.paths.reference_base`)."""

from __future__ import annotations

import json

from pixsearch_core.modeling.tokens import INFO_START
from pixsearch_core.masks import read_mask_png
from pixsearch_core.synthcrag.paths import reference_base
from pixsearch_core.training.readers.common import Rejected, resolve, segmentation_sample
from pixsearch_core.training.sample import IMAGE, Sample, find_span

_ROLE = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant"}


def _base(store, path: str, images: str | None) -> str:
    return images or reference_base(store, path)


def _jsonl(store, path: str):
    for n, line in enumerate(store.get_bytes(path).decode().splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                yield n, Rejected(f"{path}:{n}", f"not JSON: {e}")


def _llava(store, path: str, images: str | None):
    base = _base(store, path, images)
    for n, rec in enumerate(json.loads(store.get_bytes(path))):
        sid = f"llava-{rec.get('id', n)}"
        turns = rec.get("conversations") or []
        if any(t.get("from") not in _ROLE for t in turns) or len(turns) < 2:
            yield Rejected(sid, f"conversation roles {[t.get('from') for t in turns]}; allowed: human, gpt")
            continue
        conv = [{"role": _ROLE[t["from"]], "content": t["value"]} for t in turns]
        image = None
        if rec.get("image"):
            try:
                image = store.get_bytes(resolve(base, rec["image"]))
            except OSError as e:
                yield Rejected(sid, f"image: {e}")
                continue
        yield Sample(id=sid, source="llava_instruct", stage=1, image=image, conversation=conv)


def _refer_jsonl(store, path: str, images: str | None):
    base = _base(store, path, images)
    for n, rec in _jsonl(store, path):
        if isinstance(rec, Rejected):
            yield rec
            continue
        sid = f"refer-{rec.get('id', n)}"
        try:
            image = store.get_bytes(resolve(base, rec["image"]))
            mask = read_mask_png(store, resolve(base, rec["mask"])).astype("uint8")
        except (OSError, KeyError) as e:
            yield Rejected(sid, f"{type(e).__name__}: {e}")
            continue
        yield segmentation_sample(sid, "refer_jsonl", image, [rec["expression"]], [mask])


def _trajectory(store, rec: dict, base: str, n: int):
    sid = str(rec.get("id", n))
    missing = [k for k in ("image", "question", "response") if not rec.get(k)]
    if missing:
        return Rejected(sid, f"missing fields {missing}")
    response = rec["response"]
    conv = [{"role": "user", "content": f"{IMAGE}\n{rec['question']}"}, {"role": "assistant", "content": response}]
    spans, masks = [], None
    if rec.get("entity_span") and rec.get("mask"):
        info = response.find(INFO_START)
        span = find_span(response[:info if info >= 0 else len(response)], rec["entity_span"])
        if span is not None:  # else the entity is named only in the question: LM targets, nothing to segment
            spans, masks = [(1, *span)], read_mask_png(store, resolve(base, rec["mask"]))[None].astype("uint8")
    return Sample(id=sid, source="trajectories", stage=2, image=store.get_bytes(resolve(base, rec["image"])),
                  conversation=conv, spans=spans, masks=masks, query_types=list(rec.get("query_types") or []))


def _trajectories(store, path: str, images: str | None):
    base = _base(store, path, images)
    for n, rec in _jsonl(store, path):
        if isinstance(rec, Rejected):
            yield rec
            continue
        try:
            yield _trajectory(store, rec, base, n)
        except OSError as e:
            yield Rejected(str(rec.get("id", n)), f"{type(e).__name__}: {e}")


def read(reader: str, store, path: str, images: str | None = None):
    fn = {"llava_instruct": _llava, "refer_jsonl": _refer_jsonl, "trajectories": _trajectories}[reader]
    return fn(store, path, images)


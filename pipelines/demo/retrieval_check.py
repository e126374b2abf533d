"""Retrieval check: does searching the target's region find its document more often than the whole image or the
question text? Uses the gold masks, so it measures the retrieval side of the paper's claim independently of any
model (paper Table 1's Full vs Whole Image vs Text Question, at the retrieval level)."""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from typing import Any

import numpy as np
from PIL import Image

from pixsearch_core.jsonl import parse_jsonl
from pixsearch_core.masks import read_mask_png
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, Searcher, TextQuery
from pixsearch_core.storage import ObjectStore, join
from pixsearch_core.synthcrag.paths import resolve

log = logging.getLogger(__name__)

MODALITIES = ("region", "image", "text")


def _scenes(store: ObjectStore, world: str, split: str) -> list[dict[str, Any]]:
    """One row per scene image that has a visual question (its first such question)."""
    seen: dict[str, dict[str, Any]] = {}
    uri = join(world, "benchmark", f"{split}.jsonl")
    for _, row in parse_jsonl(store.get_bytes(uri), uri):
        if row["query_types"] and row["image"] not in seen:
            seen[row["image"]] = row
    return list(seen.values())


def _open(store: ObjectStore, uri: str, mode: str) -> Image.Image:
    return Image.open(io.BytesIO(store.get_bytes(uri))).convert(mode)


def retrieval_check(
    searcher: Searcher, world: str, k: int = 5, split: str = "test", store: ObjectStore | None = None
) -> dict[str, Any]:
    """hit@1 and hit@k of the target's document for region (gold mask), whole-image and question-text queries,
    egocentric and not. Returns {"ego"|"non_ego": {modality: {"hit@1", "hit@k", "n"}}, "k": k}."""
    store = store or ObjectStore()
    rows = _scenes(store, world, split)
    if not rows:
        raise ValueError(f"no visual questions in {world}/benchmark/{split}.jsonl")
    queries, keys = [], []
    for row in rows:
        image = _open(store, resolve(world, row["image"]), "RGB")  # references are relative to the world root
        mask = read_mask_png(store, resolve(world, row["gold_mask"]))
        group = "ego" if row["egocentric"] else "non_ego"
        for modality, q in zip(MODALITIES, (RegionQuery(image, mask), ImageQuery(image), TextQuery(row["query"]))):
            queries.append(q)
            keys.append((group, modality, row["entity_id"]))
    results = searcher.search_many(queries, k)
    hits: dict[tuple[str, str], list[tuple[bool, bool]]] = defaultdict(list)
    for (group, modality, gold), evidence in zip(keys, results):
        ids = [e.doc_id for e in evidence]
        hits[group, modality].append((bool(ids) and ids[0] == gold, gold in ids[:k]))
    out: dict[str, Any] = {"k": k, "split": split}
    for (group, modality), h in sorted(hits.items()):
        out.setdefault(group, {})[modality] = {
            "hit@1": float(np.mean([a for a, _ in h])),
            "hit@k": float(np.mean([b for _, b in h])),
            "n": len(h),
        }
    return out


def to_markdown(result: dict[str, Any]) -> str:
    k = result["k"]
    lines = [f"| scenes | query | hit@1 | hit@{k} | n |", "|---|---|---|---|---|"]
    for group in ("ego", "non_ego"):
        for modality in MODALITIES:
            r = result.get(group, {}).get(modality)
            if r:
                name = {"ego": "egocentric", "non_ego": "non-egocentric"}[group]
                lines.append(f"| {name} | {modality} | {r['hit@1']:.1%} | {r['hit@k']:.1%} | {r['n']} |")
    return "\n".join(lines)

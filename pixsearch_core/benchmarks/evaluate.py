"""Score a predictions file against gold data: the library half of `pixsearch eval score`.

Predictions: for text benchmarks a JSONL file of {"id": ..., "prediction": "..."} lines, ids as the dataset's own
id field (compared as strings); for mask benchmarks (refcoco*, ade20k, coco_stuff) a directory (or URI prefix)
of PNG files named `<id>.png`. Rules:
- a prediction whose id is not in the gold set is an error naming the ids (duplicate ids are errors too);
- a gold example without a prediction follows the benchmark's `missing` rule ("zero": scores 0, SQuAD / HotpotQA /
  NQ; "ignore": left out, InfoSeek; "empty": scored as an empty answer / empty mask, everything else), and a
  warning gives the count.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from pixsearch_core.benchmarks.base import BadRecordError, Benchmark, Example, read_jsonl
from pixsearch_core.storage import ObjectStore

log = logging.getLogger(__name__)


def read_text_predictions(store: ObjectStore, uri: str) -> dict[str, Any]:
    """id -> prediction from a JSONL predictions file."""
    out: dict[str, Any] = {}
    for lineno, rec in read_jsonl(store, uri):
        where = f"{uri} line {lineno + 1}"
        if not isinstance(rec, dict) or "id" not in rec or "prediction" not in rec:
            raise BadRecordError(f'{where}: expected {{"id": ..., "prediction": ...}}, got {json.dumps(rec)[:120]}')
        key = str(rec["id"])
        if key in out:
            raise BadRecordError(f"{where}: duplicate prediction id {key!r}")
        out[key] = rec["prediction"]
    return out


def list_mask_predictions(store: ObjectStore, uri: str) -> dict[str, str]:
    """id -> URI of `<id>.png` for every PNG under the directory `uri`."""
    out = {}
    for obj in store.list(uri):
        name = obj.rsplit("/", 1)[-1]
        if name.lower().endswith(".png"):
            out[name[: -len(".png")]] = obj
    if not out and not store.exists(uri):
        raise FileNotFoundError(f"no mask predictions (<id>.png files) under {uri}")
    return out


def _load_mask(store: ObjectStore, uri: str):
    from pixsearch_core.benchmarks._semseg import read_png

    mask = read_png(store.get_bytes(uri))
    if mask.ndim != 2:
        raise BadRecordError(f"{uri}: a mask prediction must be a single-channel PNG, got shape {mask.shape}")
    return mask


def score_predictions(
    bench: Benchmark, examples: list[Example], predictions_uri: str, store: ObjectStore | None = None
) -> Iterator[tuple[Example, dict[str, Any] | None]]:
    """(example, per-example scores) for every scored gold example; scores is None when the example is left out
    (missing prediction under the "ignore" rule, or an unscored example such as an unanswerable MuSiQue one)."""
    store = store or bench.store
    masks = bench.prediction_kind == "mask"
    preds = list_mask_predictions(store, predictions_uri) if masks else read_text_predictions(store, predictions_uri)
    gold_ids = {ex.id for ex in examples}
    unknown = sorted(set(preds) - gold_ids)
    if unknown:
        raise BadRecordError(
            f"{len(unknown)} prediction id(s) not in the {bench.name} gold data: "
            f"{', '.join(map(repr, unknown[:20]))}{' ...' if len(unknown) > 20 else ''}"
        )
    missing = [ex.id for ex in examples if ex.id not in preds and not ex.metadata.get("unscored")]
    if missing:
        log.warning(
            "%d of %d %s gold examples have no prediction (rule %r: %s); first: %s",
            len(missing),
            len(examples),
            bench.name,
            bench.missing,
            _RULES[bench.missing],
            ", ".join(missing[:5]),
        )
    for ex in tqdm(examples, desc=f"scoring {bench.name}", unit="ex", disable=len(examples) < 1000):
        if ex.metadata.get("unscored"):
            yield ex, None
        elif ex.id in preds:
            pred = _load_mask(store, preds[ex.id]) if masks else preds[ex.id]
            yield ex, bench.score(ex, pred)
        elif bench.missing == "ignore":
            yield ex, None
        elif bench.missing == "zero":
            yield ex, bench.zero_score(ex)
        else:
            yield ex, bench.score(ex, None if masks else "")


_RULES = {"zero": "scored 0", "ignore": "left out of the scores", "empty": "scored as empty predictions"}


def evaluate(
    bench: Benchmark, gold_uri: str, predictions_uri: str, split: str | None = None, per_example_uri: str | None = None
) -> dict[str, Any]:
    """Load gold, score every prediction, aggregate; optionally write per-example scores (JSONL)."""
    examples = list(bench.load(gold_uri, split))
    if not examples:
        raise ValueError(f"no {bench.name} gold examples in {gold_uri} (split {split or bench.default_split!r})")
    scored = [(ex, s) for ex, s in score_predictions(bench, examples, predictions_uri) if s is not None]
    if per_example_uri:
        lines = [
            json.dumps({"id": ex.id, **{k: v for k, v in s.items() if isinstance(v, bool | int | float | str)}})
            for ex, s in scored
        ]
        bench.store.put_bytes(per_example_uri, ("\n".join(lines) + "\n").encode())
    return bench.aggregate([s for _, s in scored])

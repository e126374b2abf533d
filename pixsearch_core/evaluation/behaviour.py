"""Search behaviour and mask quality of an eval run, from its records (the report's "Search behaviour" table).

    stats = behaviour(run.records, store)   # {"all": {...}, "ego": {...}, "non_ego": {...}}

Per group of records (status ok):
- `well_formed`: share of questions whose trajectory has no malformed-output issue (an unclosed or nested
  `<search>`, an empty or unknown payload, a region search with no entity span or an empty mask, a search cut by
  the token limit). Backend failures (`search_failed`) and searches the mode forbids (`modality_not_allowed`) are
  not the model's format and do not count against it.
- `answered`: share with a non-empty answer; `searches`: mean search calls per question, and calls per modality.
- `giou` / `ciou` over the questions where the model made a region search: the FIRST region mask against the gold
  target mask (LISA's per-expression IoU, `metrics.segmentation`), `n_masks` of them.
- `giou_region_gold`: the same over the questions whose GOLD trajectory searches a region (the record's
  `gold_query_types`), a missing or empty predicted mask counting as IoU 0, `n_region_gold` of them.
- Region choice on those gold-region questions: `region_chosen` is the share where the model asked for `<region>`
  (the requested modality, whatever happened next), `region_sent` the share where a region query was actually
  sent (a mask was made; a `<region>` with no entity span or an empty mask falls back to the whole image), and
  `giou_region_chosen` the gIoU of the masks made there (`n_region_sent` of them).
A gold mask that cannot be read is counted in `gold_mask_unreadable` and left out (and logged), never scored 0.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pixsearch_core.masks import read_mask_png, rle_to_mask
from pixsearch_core.metrics.segmentation import refer_aggregate, refer_expression_score
from pixsearch_core.storage import ObjectStore

log = logging.getLogger(__name__)

#: issue kinds that mean the model's own output was malformed (decoding/state.Issue)
MALFORMED = frozenset(
    {
        "search_end_without_start",
        "nested_search",
        "unclosed_search",
        "token_limit_in_search",
        "empty_payload",
        "unknown_modality",
        "region_no_entity",
        "region_empty_mask",
        "no_image",
    }
)
GROUPS = (("all", None), ("ego", True), ("non_ego", False))


def _first_region_mask(record: dict[str, Any]) -> np.ndarray | None:
    for s in record.get("searches") or []:
        if s.get("modality") == "region" and s.get("mask_rle"):
            return rle_to_mask(s["mask_rle"])
    return None


def _group(records: list[dict[str, Any]], golds: dict[str, np.ndarray | None]) -> dict[str, Any]:
    n = len(records)
    out: dict[str, Any] = {"n": n}
    if not n:
        return out
    issues = [{i.get("kind") for i in (r.get("trajectory") or {}).get("issues", [])} for r in records]
    out["well_formed"] = sum(not (k & MALFORMED) for k in issues) / n
    out["answered"] = sum(bool((r.get("answer") or "").strip()) for r in records) / n
    searches = [s for r in records for s in r.get("searches") or []]
    out["searches"] = len(searches) / n
    for m in ("region", "image", "text"):
        out[f"{m}_searches"] = sum(s.get("modality") == m for s in searches)
    made, region_gold, chosen, sent, unreadable = [], [], 0, [], 0
    for r in records:
        gold = golds.get(r.get("gold_mask")) if r.get("gold_mask") else None
        if r.get("gold_mask") and gold is None:
            unreadable += 1
            continue
        pred = _first_region_mask(r)
        if gold is not None and pred is not None and pred.shape != gold.shape:
            log.warning(
                "%s: predicted mask %s vs gold %s; scored as no mask", r.get("sample_id"), pred.shape, gold.shape
            )
            pred = None
        if gold is not None and pred is not None:
            made.append(refer_expression_score(pred, gold))
        if gold is not None and "REGION" in (r.get("gold_query_types") or []):
            region_gold.append(refer_expression_score(pred if pred is not None else np.zeros_like(gold), gold))
            chosen += any(s.get("requested") == "region" for s in r.get("searches") or [])
            if pred is not None:
                sent.append(region_gold[-1])
    agg = refer_aggregate(made)
    out.update(
        giou=agg["giou"] if made else None,
        ciou=agg["ciou"] if made else None,
        n_masks=len(made),
        giou_region_gold=refer_aggregate(region_gold)["giou"] if region_gold else None,
        n_region_gold=len(region_gold),
        region_chosen=chosen / len(region_gold) if region_gold else None,
        region_sent=len(sent) / len(region_gold) if region_gold else None,
        giou_region_chosen=refer_aggregate(sent)["giou"] if sent else None,
        n_region_sent=len(sent),
        gold_mask_unreadable=unreadable,
    )
    return out


def behaviour(records: list[dict[str, Any]], store: ObjectStore | None = None) -> dict[str, dict[str, Any]]:
    """{"all" | "ego" | "non_ego": stats} over the records with status ok (see the module docstring)."""
    store = store or ObjectStore()
    ok = [r for r in records if r.get("status") == "ok"]
    golds: dict[str, np.ndarray | None] = {}
    for ref in sorted({r["gold_mask"] for r in ok if r.get("gold_mask")}):
        try:
            golds[ref] = read_mask_png(store, ref)  # non-zero = object
        except Exception as e:  # counted per group as gold_mask_unreadable, never scored
            log.warning("gold mask %s cannot be read (%s): left out of the mask scores", ref, e)
            golds[ref] = None
    return {
        name: _group([r for r in ok if ego is None or bool(r.get("egocentric")) == ego], golds) for name, ego in GROUPS
    }

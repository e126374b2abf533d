"""OVEN entity accuracy (docs/metrics.md §6). Source: `oven_eval.py` of the OVEN release.

Per `data_split`: accuracy = 100 * mean(pred_entity_id == entity_id), rounded to 2 places; a split is "seen" if
"_seen" is in its name and "unseen" if "_unseen" is; query splits start with "query", entity splits with
"entity". query score = HM(query seen, query unseen), entity score = HM(entity seen, entity unseen),
final = HM(query score, entity score). The harmonic mean is InfoSeek's (a zero, or a missing group, counts as
1e-12), so a subset lacking one group scores about 0, as the official pooling would.
"""

from __future__ import annotations

from collections import defaultdict

from pixsearch_core.metrics.infoseek import harmonic_mean, split_score
from pixsearch_core.registry import register

GROUPS = ("query_seen", "query_unseen", "entity_seen", "entity_unseen")


@register("metric", "oven_accuracy")
def oven_correct(pred_entity_id: str, entity_id: str) -> float:
    """1.0 if the predicted Wikidata QID equals the gold one (surrounding whitespace ignored)."""
    return float(pred_entity_id.strip() == entity_id)


def split_group(data_split: str) -> str:
    """Which of GROUPS a data_split belongs to, e.g. "entity_val_unseen" -> "entity_unseen"."""
    task = "query" if data_split.startswith("query") else "entity"
    if "_unseen" in data_split:
        return f"{task}_unseen"
    if "_seen" in data_split:
        return f"{task}_seen"
    raise ValueError(
        f"OVEN data_split {data_split!r} names neither seen nor unseen; "
        "expected e.g. 'entity_val_seen' or 'query_val_unseen'"
    )


def oven_scores(correct_by_split: dict[str, list[float]]) -> dict[str, float]:
    """Official OVEN scores (percentages) from per-data_split correctness lists."""
    groups: dict[str, list[float]] = defaultdict(list)
    for data_split, correct in correct_by_split.items():
        groups[split_group(data_split)].extend(correct)
    out = {g: split_score(groups.get(g, [])) for g in GROUPS}
    out["query_score"] = harmonic_mean(out["query_seen"], out["query_unseen"])
    out["entity_score"] = harmonic_mean(out["entity_seen"], out["entity_unseen"])
    out["final"] = harmonic_mean(out["query_score"], out["entity_score"])
    return out

"""Figures of an eval run (matplotlib, Agg): the paper's Figure 4 and mask overlays.

- `search_behaviour`: left, the distribution of searches per sample; right, the share of region / image / text
  queries among all searches; each split egocentric vs non-egocentric (samples without the flag count as
  non-egocentric). Error records are left out.
- `mask_overlays`: for a few examples with a predicted mask (the last region search's RLE), the image with the
  predicted mask (red) and the gold mask (green outline) when the record names one.

Masks are COCO RLE ({"size": [H, W], "counts": [...]}, column-major), decoded by `pixsearch_core.masks`.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from typing import Any

import numpy as np

from pixsearch_core.masks import mask_boundary, read_mask_png, rle_to_mask
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

MODALITIES = ("region", "image", "text")
_GROUPS = (("egocentric", True), ("non-egocentric", False))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def search_stats(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{"egocentric" | "non-egocentric": {"per_sample": Counter(n -> samples), "modality": Counter, "samples"}}."""
    out = {name: {"per_sample": Counter(), "modality": Counter(), "samples": 0} for name, _ in _GROUPS}
    for r in records:
        if r.get("status") != "ok":
            continue
        g = out["egocentric" if r.get("egocentric") else "non-egocentric"]
        searches = r.get("searches") or []
        g["samples"] += 1
        g["per_sample"][len(searches)] += 1
        g["modality"].update(s.get("modality") or "none" for s in searches)
    return out


def _save(fig, store: ObjectStore, uri: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    store.put_bytes(uri, buf.getvalue())
    return uri


def search_behaviour(run, uri: str, store: ObjectStore) -> str:
    plt = _pyplot()
    stats = search_stats(run.records)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    top = max([n for g in stats.values() for n in g["per_sample"]] + [1])
    xs = np.arange(top + 1)
    for k, (name, _) in enumerate(_GROUPS):
        g, n = stats[name], max(stats[name]["samples"], 1)
        ax1.bar(
            xs + (k - 0.5) * 0.4,
            [100 * g["per_sample"][x] / n for x in xs],
            width=0.4,
            label=f"{name} (n={g['samples']})",
        )
        total = max(sum(g["modality"][m] for m in MODALITIES), 1)
        ax2.bar(
            np.arange(3) + (k - 0.5) * 0.4,
            [100 * g["modality"][m] / total for m in MODALITIES],
            width=0.4,
            label=f"{name} ({sum(g['modality'].values())} searches)",
        )
    ax1.set(xlabel="searches per sample", ylabel="% of samples", xticks=xs, title="Search calls per sample")
    ax2.set(
        xticks=np.arange(3), xticklabels=["region", "image", "text"], ylabel="% of searches", title="Query modality"
    )
    for ax in (ax1, ax2):
        ax.set_ylim(0, 118)  # room for the legend above 100 %
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Search behaviour: {run.label}")
    return _save(fig, store, uri)


def _load_image(store: ObjectStore, ref: str | None, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if ref:
        try:
            return np.asarray(Image.open(io.BytesIO(store.get_bytes(ref))).convert("RGB"))
        except Exception as e:  # an unreachable image still gets its mask drawn
            log.warning("overlay: cannot read image %s (%s); drawing on grey", ref, e)
    return np.full((*shape, 3), 128, dtype=np.uint8)


def _gold_mask(store: ObjectStore, ref: str | None) -> np.ndarray | None:
    """The gold mask for an overlay's outline, or None: the overlay is then drawn without it and its title says
    so."""
    if not ref:
        return None
    try:
        return read_mask_png(store, ref)
    except Exception as e:
        log.warning("overlay: cannot read gold mask %s (%s)", ref, e)
        return None


def overlay(image: np.ndarray, pred: np.ndarray, gold: np.ndarray | None) -> np.ndarray:
    """Image with the predicted mask blended in red; the gold mask's boundary in green."""
    out = image.astype(np.float32).copy()
    if pred.shape == out.shape[:2]:
        out[pred] = 0.5 * out[pred] + 0.5 * np.array([255, 0, 0])
    if gold is not None and gold.shape == out.shape[:2]:
        out[mask_boundary(gold)] = [0, 255, 0]
    return out.astype(np.uint8)


def mask_overlays(run, prefix: str, store: ObjectStore, limit: int = 4) -> list[str]:
    """One PNG per sampled example (the first `limit` ids, sorted, that have a predicted mask)."""
    plt = _pyplot()
    picked = sorted(
        (r for r in run.records if r.get("status") == "ok" and r.get("mask_rle")), key=lambda r: r["sample_id"]
    )[:limit]
    uris = []
    for r in picked:
        pred = rle_to_mask(r["mask_rle"])
        gold = _gold_mask(store, r.get("gold_mask"))
        image = _load_image(store, r.get("image"), pred.shape)
        fig, ax = plt.subplots(figsize=(5, 5 * image.shape[0] / max(image.shape[1], 1) + 0.8))
        ax.imshow(overlay(image, pred, gold))
        ax.set_axis_off()
        ax.set_title(
            f"{r['sample_id']}: {r.get('question', '')[:50]}\nanswer: {str(r.get('answer'))[:50]}  "
            f"(red: predicted{', green: gold' if gold is not None else ''})",
            fontsize=8,
        )
        uris.append(_save(fig, store, join(prefix, re.sub(r"[^A-Za-z0-9._-]", "_", str(r["sample_id"])) + ".png")))
    return uris

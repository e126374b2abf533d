"""The report's segmentation section: the paper's Table 2 (ADE20K / COCO-Stuff mIoU) and Table 3 (RefCOCO/+/g gIoU,
with cIoU), a per-run detail table, and overlays of predicted vs gold masks, from segmentation runs' records.

Tables 2 and 3 have one row per model and one column per (benchmark, split) run; a cell is the run's aggregate in
% (the benchmark's own `aggregate` over the records' per-example scores, error records left out, as `eval report`
does for every run). The detail table adds n, aAcc, errors and the share of prompts where the model produced a
mask query (`seg.spans_found`: with span="tagger" a prompt without a tagged span gives an empty mask).

Overlays: a referring expression is drawn as the image with the predicted mask in red and the gold outline in
green (`plots.overlay`); a semantic-segmentation image as three panels: image, gold label map, predicted label map
(one colour per train id, black = no class / ignored).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from pixsearch_core.evaluation.segmentation import REFER, SEMSEG
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

NAMES = {
    "refcoco": "RefCOCO",
    "refcoco+": "RefCOCO+",
    "refcocog": "RefCOCOg",
    "synthcrag_refer": "SynthCRAG (referring)",
    "ade20k": "ADE20K",
    "coco_stuff": "COCO-Stuff",
}


def is_segmentation(run) -> bool:
    return run.meta.get("benchmark") in REFER + SEMSEG


def _model(run) -> str:
    return str(run.meta.get("model", "?")).rstrip("/").rsplit("/", 1)[-1]


def _split(run) -> str:
    from pixsearch_core.registry import get

    return run.meta.get("split") or get("benchmark", run.meta["benchmark"]).default_split


def _column(run) -> str:
    return f"{NAMES.get(run.meta['benchmark'], run.meta['benchmark'])} ({_split(run)})"


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _grid(runs: list, cell) -> tuple[list[str], list[list[str]]]:
    columns = list(dict.fromkeys(_column(r) for r in runs))
    models = list(dict.fromkeys(_model(r) for r in runs))
    by = {(_model(r), _column(r)): r for r in runs}
    rows = [[m] + [cell(by[(m, c)]) if (m, c) in by else "-" for c in columns] for m in models]
    return ["Model", *columns], rows


def _spans(run) -> str:
    ok = [r.get("seg") or {} for r in run.records if r.get("status") == "ok"]
    prompts = sum(int(s.get("prompts", 0)) for s in ok)
    return _pct(sum(int(s.get("spans_found", 0)) for s in ok) / prompts) if prompts else "-"


def segmentation_tables(runs: list) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for Table 2, Table 3 and the detail table; only those with runs."""
    sem = [r for r in runs if r.meta.get("benchmark") in SEMSEG]
    ref = [r for r in runs if r.meta.get("benchmark") in REFER]
    out = []
    if sem:
        out.append(("Table 2: semantic segmentation (mIoU, %)", *_grid(sem, lambda r: _pct(r.aggregate.get("miou")))))
    if ref:
        out.append(
            (
                "Table 3: referring expression segmentation (gIoU / cIoU, %)",
                *_grid(ref, lambda r: f"{_pct(r.aggregate.get('giou'))} / {_pct(r.aggregate.get('ciou'))}"),
            )
        )
    if runs:
        header = [
            "Run",
            "Model",
            "Benchmark",
            "Split",
            "n",
            "gIoU",
            "cIoU",
            "mIoU",
            "aAcc",
            "prompts with a mask query",
            "errors",
        ]
        rows = [
            [
                r.uri.rstrip("/").rsplit("/", 1)[-1],
                _model(r),
                r.meta["benchmark"],
                _split(r),
                str(r.aggregate.get("n", 0)),
                *(_pct(r.aggregate.get(k)) for k in ("giou", "ciou", "miou", "aacc")),
                _spans(r),
                str(r.errors),
            ]
            for r in runs
        ]
        out.append(("Segmentation runs", header, rows))
    return out


# ------------------------------------------------------------ overlays
def _palette() -> np.ndarray:
    pal = np.random.default_rng(0).integers(40, 256, (256, 3)).astype(np.uint8)
    pal[255] = 0
    return pal


def _label_map(store: ObjectStore, uri: str | None, benchmark: str, gold: bool) -> np.ndarray | None:
    """A label map in train ids: a prediction PNG as it is, a gold annotation through the benchmark's mapping."""
    if not uri:
        return None
    from pixsearch_core.benchmarks._semseg import read_png
    from pixsearch_core.registry import get

    try:
        raw = read_png(store.get_bytes(uri))
        return get("benchmark", benchmark).to_train_ids(raw) if gold else raw
    except Exception as e:  # the overlay is drawn without it; its title says so
        log.warning("overlay: cannot read label map %s (%s)", uri, e)
        return None


def _refer_figure(plt, r: dict[str, Any], store: ObjectStore):
    from pixsearch_core.evaluation.plots import _load_image, overlay
    from pixsearch_core.masks import rle_to_mask

    pred = rle_to_mask(r["mask_rle"])
    gold = rle_to_mask(r["gold_rle"]) if r.get("gold_rle") else None
    image = _load_image(store, r.get("image"), pred.shape)
    fig, ax = plt.subplots(figsize=(5, 5 * image.shape[0] / max(image.shape[1], 1) + 0.8))
    ax.imshow(overlay(image, pred, gold))
    ax.set_axis_off()
    iou = (r.get("scores") or {}).get("iou")
    ax.set_title(
        f"{r['sample_id']}: {r.get('question', '')[:60]}\nIoU {_pct(iou)}  (red: predicted"
        f"{', green: gold' if gold is not None else ''})",
        fontsize=8,
    )
    return fig


def _semseg_figure(plt, r: dict[str, Any], store: ObjectStore, benchmark: str):
    from pixsearch_core.evaluation.plots import _load_image

    pal = _palette()
    pred = _label_map(store, r.get("prediction"), benchmark, gold=False)
    gold = _label_map(store, r.get("gold_labels"), benchmark, gold=True)
    shape = next((m.shape for m in (pred, gold) if m is not None), (64, 64))
    panels = [
        ("image", _load_image(store, r.get("image"), shape)),
        ("gold", pal[gold] if gold is not None else None),
        ("predicted", pal[pred] if pred is not None else None),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4 * shape[0] / max(shape[1], 1) + 0.8))
    for ax, (name, img) in zip(axes, panels):
        if img is not None:
            ax.imshow(img)
        ax.set_title(name if img is not None else f"{name}: unreadable", fontsize=9)
        ax.set_axis_off()
    seg = r.get("seg") or {}
    fig.suptitle(
        f"{r['sample_id']}: {seg.get('prompts', '?')} class prompts, aAcc {_pct((r.get('scores') or {}).get('aacc'))}",
        fontsize=9,
    )
    return fig


def overlays(run, prefix: str, store: ObjectStore, limit: int = 4) -> list[str]:
    """One PNG per example (the first `limit` ok ids, sorted): predicted vs gold masks."""
    from pixsearch_core.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    bench = run.meta["benchmark"]
    ok = sorted((r for r in run.records if r.get("status") == "ok"), key=lambda r: r["sample_id"])
    uris = []
    for r in ok[:limit]:
        if bench in REFER and not r.get("mask_rle"):
            continue
        fig = _refer_figure(plt, r, store) if bench in REFER else _semseg_figure(plt, r, store, bench)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", str(r["sample_id"])) + ".png"
        uris.append(_save(fig, store, join(prefix, name)))
    return uris

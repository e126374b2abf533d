"""Shared scorer of the semantic-segmentation benchmarks: per image, per-class intersection / union / label areas
(pixels whose gold is 255 are ignored); over the split, mIoU and aAcc (`metrics.segmentation.semseg_aggregate`).
`miou_mode="mmseg"` (default: nanmean over classes present in prediction or gold) or "all_classes" (LISA style).

Predictions: one PNG label map per image, `<id>.png`, holding train ids 0..C-1 (255 = no class) at the gold
annotation's size. A missing prediction is a map of 255: every labelled pixel counts against recall."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from pixsearch_core.benchmarks.base import BadRecordError, Benchmark, Example
from pixsearch_core.metrics.segmentation import IGNORE, MIOU_MODES, intersection_union, semseg_aggregate


def read_png(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


class SemSegBenchmark(Benchmark):
    prediction_kind = "mask"
    num_classes: ClassVar[int] = 0
    to_train_ids: ClassVar[Callable[[np.ndarray], np.ndarray]]

    def __init__(self, store=None, miou_mode: str = "mmseg", **options):
        super().__init__(store, **options)
        if miou_mode not in MIOU_MODES:
            raise ValueError(f"miou_mode {miou_mode!r} not allowed; allowed: {', '.join(MIOU_MODES)}")
        self.miou_mode = miou_mode

    def _example(self, uri: str) -> Example:
        stem = uri.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return Example(
            id=stem,
            mask=lambda: type(self).to_train_ids(read_png(self.store.get_bytes(uri))),
            metadata={"annotation": uri},
        )

    def score(self, example, prediction):
        gt = example.mask() if callable(example.mask) else example.mask
        if gt.ndim != 2:
            raise BadRecordError(
                f"{self.name} gold {example.metadata.get('annotation')}: expected a single-channel "
                f"label map, got shape {gt.shape}"
            )
        pred = np.full(gt.shape, IGNORE, dtype=np.int64) if prediction is None else np.asarray(prediction)
        if pred.shape != gt.shape:
            raise BadRecordError(
                f"{self.name} prediction for id {example.id!r} has shape {pred.shape}, the gold label map {gt.shape}"
            )
        inter, union, _, label = intersection_union(pred, gt, self.num_classes)
        return {
            "intersection": inter,
            "union": union,
            "label": label,
            "aacc": float(inter.sum() / label.sum()) if label.sum() else 0.0,
        }

    def aggregate(self, scores):
        zero = np.zeros(self.num_classes, dtype=np.int64)
        inter = sum((s["intersection"] for s in scores), zero)
        union = sum((s["union"] for s in scores), zero)
        label = sum((s["label"] for s in scores), zero)
        return {**semseg_aggregate(inter, union, label, self.miou_mode), "n": len(scores)}

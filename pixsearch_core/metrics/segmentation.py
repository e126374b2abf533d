"""Segmentation metrics (docs/metrics.md §8, §9).

- `intersection_union`: LISA's `intersectionAndUnionGPU` in numpy: pixels where gt == ignore_index are set to
  ignore_index in the prediction; areas are histograms over [0, K-1] (values outside, such as 255 or the stray 2
  of overlapping gold polygons, are dropped, as torch.histc drops them).
- `refer_expression_score` / `refer_aggregate`: LISA's `validate`: per expression IoU = I/(U + 1e-5) with +1.0 when U == 0;
  gIoU = sum of foreground IoUs / (N + 1e-5) (AverageMeter.all_reduce), cIoU = sum I / (sum U + 1e-10).
- `semseg_aggregate`: mmseg `IoUMetric` over per-class areas summed over the split; IoU_c = I_c / U_c,
  mIoU = nanmean over classes with U_c > 0 (`miou_mode="mmseg"`, the default), or LISA / hszhao-semseg style
  I_c / (U_c + 1e-10) averaged over ALL classes (`miou_mode="all_classes"`); aAcc = sum I / sum label area.
All values are fractions (the official scripts multiply by 100).
"""

from __future__ import annotations

import numpy as np

from pixsearch_core.registry import register

IGNORE = 255
MIOU_MODES = ("mmseg", "all_classes")


def intersection_union(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = IGNORE):
    """(area_intersection, area_union, area_pred, area_gt), each of shape (num_classes,), as int64."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != gold shape {gt.shape}")
    pred = pred.astype(np.int64).copy()
    gt = gt.astype(np.int64)
    pred[gt == ignore_index] = ignore_index

    def hist(values: np.ndarray) -> np.ndarray:
        values = values[(values >= 0) & (values < num_classes)]
        return np.bincount(values.ravel(), minlength=num_classes)[:num_classes]

    inter = hist(pred[pred == gt])
    area_pred, area_gt = hist(pred), hist(gt)
    return inter, area_pred + area_gt - inter, area_pred, area_gt


def refer_expression_score(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """One referring expression as LISA counts it: foreground IoU = I/(U + 1e-5), +1.0 when U == 0 (empty
    prediction and empty gold), plus the foreground intersection and union for cIoU. `pred` is binary."""
    inter, union, _, _ = intersection_union(pred, gt, 2)
    iou = inter / (union + 1e-5)
    iou[union == 0] += 1.0
    return {"iou": float(iou[1]), "intersection": int(inter[1]), "union": int(union[1])}


@register("metric", "giou_ciou")
def refer_aggregate(scores: list[dict]) -> dict[str, float]:
    """gIoU = sum IoU / (N + 1e-5) (LISA's AverageMeter.all_reduce), cIoU = sum I / (sum U + 1e-10)."""
    n = len(scores)
    return {
        "giou": sum(s["iou"] for s in scores) / (n + 1e-5),
        "ciou": sum(s["intersection"] for s in scores) / (sum(s["union"] for s in scores) + 1e-10),
        "n": n,
    }


@register("metric", "miou")
def semseg_aggregate(inter: np.ndarray, union: np.ndarray, label: np.ndarray, miou_mode: str = "mmseg") -> dict:
    """mIoU and aAcc from per-class areas summed over a split (see the module docstring for the two modes)."""
    if miou_mode not in MIOU_MODES:
        raise ValueError(f"miou_mode {miou_mode!r} not allowed; allowed: {', '.join(MIOU_MODES)}")
    inter, union, label = (np.asarray(a, dtype=np.float64) for a in (inter, union, label))
    if miou_mode == "mmseg":
        present = union > 0
        miou = float(np.mean(inter[present] / union[present])) if present.any() else 0.0
    else:
        miou = float(np.mean(inter / (union + 1e-10)))
    total = label.sum()
    return {"miou": miou, "aacc": float(inter.sum() / total) if total else 0.0}


def ade20k_reduce_zero_label(gt: np.ndarray) -> np.ndarray:
    """mmseg `reduce_zero_label`: 0 (other) -> 255, classes 1..150 -> 0..149."""
    out = gt.astype(np.int64)
    out[out == 0] = 255
    out -= 1
    out[out == 254] = IGNORE
    return out


#: COCO-Stuff-164k PNG values (0-based ids) that never occur; the other 171 map to train ids 0..170 in order.
COCO_STUFF_MISSING = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
_COCO_LUT = np.full(256, IGNORE, dtype=np.int64)
_COCO_LUT[[v for v in range(182) if v not in COCO_STUFF_MISSING]] = np.arange(171)


def coco_stuff_train_ids(gt: np.ndarray) -> np.ndarray:
    """mmseg `clsID_to_trID`: PNG values 0..181 -> train ids 0..170 (the 11 unused ids and 255 -> 255)."""
    return _COCO_LUT[gt.astype(np.int64)]

"""Binary masks as COCO-style uncompressed RLE: column-major (Fortran order) run lengths, starting with zeros.

    rle = mask_to_rle(mask)       # {"size": [H, W], "counts": [z0, o1, z2, ...]}
    mask = rle_to_mask(rle)       # (H, W) bool, equal to the input

The format is what `pycocotools.mask.frPyObjects` accepts for an uncompressed RLE.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) boolean mask -> {"size": [H, W], "counts": [...]}; the first count is a (possibly 0) run of zeros."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = mask.astype(bool).ravel(order="F")
    if flat.size == 0:
        return {"size": list(mask.shape), "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of `mask_to_rle`; raises if the counts do not add up to H*W."""
    h, w = (int(v) for v in rle["size"])
    counts = [int(c) for c in rle["counts"]]
    if sum(counts) != h * w or any(c < 0 for c in counts):
        raise ValueError(f"RLE counts sum to {sum(counts)} (or hold negatives), expected H*W = {h * w}")
    values = np.arange(len(counts)) % 2 == 1  # runs alternate zeros, ones, zeros, ...
    flat = np.repeat(values, counts)
    return flat.reshape((h, w), order="F")

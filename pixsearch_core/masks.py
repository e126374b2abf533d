"""Binary masks in and out: the one place that encodes, decodes, reads and writes them.

    rle = mask_to_rle(mask)                 # {"size": [H, W], "counts": [z0, o1, z2, ...]}, COCO uncompressed
    mask = rle_to_mask(rle)                 # (H, W) bool; also COCO's compressed string counts (pycocotools)
    data = mask_to_png(mask)                # PNG bytes, 8-bit grey: 255 inside, 0 outside
    mask = png_to_mask(data)                # (H, W) bool: non-zero = inside (any PNG mode, via grey)
    mask = read_mask_png(store, uri)        # the same, from a path or object-store URI
    mask = decode_coco_segmentation(seg, h, w)   # a COCO annotation's polygons or RLEs, uint8 summed over parts

RLE counts are column-major (Fortran order) run lengths that start with a (possibly empty) run of zeros: the
uncompressed format `pycocotools.mask.frPyObjects` accepts. Masks cross process boundaries in it (search requests,
run records). This module is on the library's ground floor: it imports nothing else of pixsearch (a `store` is
any object with `get_bytes(uri)`, e.g. `pixsearch_core.storage.ObjectStore`).
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


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


def rle_to_mask(rle: dict[str, Any], expect_hw: tuple[int, int] | None = None) -> np.ndarray:
    """A COCO RLE -> (H, W) bool. Counts as a list (uncompressed, `mask_to_rle`'s) must add up to H*W; counts as a
    string or bytes (COCO's compressed form) are decoded by pycocotools. With `expect_hw` (untrusted input: a
    search request), the RLE must declare exactly that size and hold at most H*W+1 counts, checked before
    anything is allocated (a 200-byte RLE claiming 30000x30000 is refused, not expanded)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"an RLE is a dict with 'size' and 'counts', got {str(rle)[:80]}")
    if expect_hw is not None:
        if list(rle["size"]) != list(expect_hw):
            raise ValueError(f"RLE size {rle['size']!r} does not match the image (H, W) {list(expect_hw)}")
        if len(rle["counts"]) > expect_hw[0] * expect_hw[1] + 1:
            raise ValueError(f"RLE has {len(rle['counts'])} counts for {expect_hw[0] * expect_hw[1]} pixels")
    h, w = (int(v) for v in rle["size"])
    if isinstance(rle["counts"], str | bytes):
        return _decode_compressed(rle["counts"], h, w)
    counts = [int(c) for c in rle["counts"]]
    if sum(counts) != h * w or any(c < 0 for c in counts):
        raise ValueError(f"RLE counts sum to {sum(counts)} (or hold negatives), expected H*W = {h * w}")
    values = np.arange(len(counts)) % 2 == 1  # runs alternate zeros, ones, zeros, ...
    return np.repeat(values, counts).reshape((h, w), order="F")


def _decode_compressed(counts: str | bytes, h: int, w: int) -> np.ndarray:
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise ImportError("compressed (string) RLE counts need pycocotools (pip install pycocotools)") from None
    coded = {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
    return mask_utils.decode(coded).astype(bool)


def mask_to_png(mask: np.ndarray) -> bytes:
    """(H, W) mask (non-zero = inside) -> PNG bytes, 8-bit grey, 255 inside and 0 outside (deterministic bytes)."""
    from PIL import Image

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    buf = io.BytesIO()
    Image.fromarray((mask != 0).astype(np.uint8) * 255).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def mask_from_image(image) -> np.ndarray:
    """A PIL image -> (H, W) bool: non-zero grey value = inside."""
    return np.asarray(image.convert("L")) > 0


def png_to_mask(data: bytes) -> np.ndarray:
    """PNG (or any image PIL reads) bytes -> (H, W) bool, non-zero = inside."""
    from PIL import Image

    return mask_from_image(Image.open(io.BytesIO(data)))


def read_mask_png(store, uri: str) -> np.ndarray:
    """The mask image at `uri` (a path or object-store URI, read through `store`) -> (H, W) bool."""
    return png_to_mask(store.get_bytes(uri))


def decode_coco_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO annotation's `segmentation` -> uint8 (H, W), summed over its parts as LISA's `refer_seg` loader does
    (overlaps give 2). Polygons ([[x0, y0, x1, y1, ...], ...]) are rasterised by pycocotools (COCO's own
    rasteriser) when installed, else by PIL, whose fill can differ on boundary pixels (logged once); an RLE or a
    list of RLEs goes through `rle_to_mask`. An empty segmentation is an empty mask."""
    if not segmentation:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(segmentation, list) and isinstance(segmentation[0], list):
        return _rasterise_polygons(segmentation, height, width)
    rles = segmentation if isinstance(segmentation, list) else [segmentation]
    total = np.zeros((height, width), dtype=np.uint8)
    for rle in rles:
        part = rle_to_mask(rle)
        if part.shape != (height, width):
            raise ValueError(f"RLE of size {list(part.shape)} in an annotation of size [{height}, {width}]")
        total += part.astype(np.uint8)
    return total


def _rasterise_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        return _rasterise_with_pil(polygons, height, width)
    m = mask_utils.decode(mask_utils.frPyObjects(polygons, height, width))
    return np.sum(m.reshape(height, width, -1), axis=2).astype(np.uint8)


_warned = False


def _rasterise_with_pil(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    global _warned
    from PIL import Image, ImageDraw

    if not _warned:
        log.warning(
            "pycocotools is not installed: rasterising polygons with PIL, which may differ from COCO's "
            "rasteriser on boundary pixels"
        )
        _warned = True
    total = np.zeros((height, width), dtype=np.uint8)
    for poly in polygons:
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly) - 1, 2)], fill=1)
        total += np.asarray(canvas, dtype=np.uint8)
    return total


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the mask's pixels with a 4-neighbour outside it (the outline drawn over images). Pixels on
    the image border count as inside, so a mask cut by the border is not outlined along it."""
    mask = np.asarray(mask, dtype=bool)
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner

"""pixsearch_core.masks: RLE both ways (checked against pycocotools), mask PNGs, COCO segmentations."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco

from pixsearch_core import masks
from pixsearch_core.masks import (
    decode_coco_segmentation,
    mask_from_image,
    mask_to_png,
    mask_to_rle,
    png_to_mask,
    read_mask_png,
    rle_to_mask,
)
from pixsearch_core.storage import ObjectStore


def random_mask(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((rng.integers(1, 20), rng.integers(1, 20))) < rng.random()


# ---------------------------------------------------------------- RLE
def test_hand_worked_column_major_counts():
    # columns read top to bottom: col0 = [0, 1], col1 = [1, 1], col2 = [0, 0] -> 0 1 1 1 0 0
    mask = np.array([[0, 1, 0], [1, 1, 0]], dtype=bool)
    assert mask_to_rle(mask) == {"size": [2, 3], "counts": [1, 3, 2]}
    assert mask_to_rle(np.ones((2, 2), bool))["counts"] == [0, 4]  # starts with an empty run of zeros
    assert mask_to_rle(np.zeros((2, 2), bool))["counts"] == [4]
    assert rle_to_mask({"size": [2, 3], "counts": [1, 3, 2]}).tolist() == mask.tolist()


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_random_masks(seed):
    mask = random_mask(seed)
    rle = mask_to_rle(mask)
    assert sum(rle["counts"]) == mask.size
    back = rle_to_mask(rle)
    assert back.dtype == bool and np.array_equal(back, mask)


@pytest.mark.parametrize("seed", range(5))
def test_uncompressed_rle_is_what_pycocotools_reads_and_compressed_rle_decodes(seed):
    mask = random_mask(seed)
    h, w = mask.shape
    ours = mask_to_rle(mask)
    assert np.array_equal(coco.decode(coco.frPyObjects(ours, h, w)).astype(bool), mask)  # COCO reads ours
    compressed = coco.encode(np.asfortranarray(mask.astype(np.uint8)))  # {"size", "counts": bytes}
    assert np.array_equal(rle_to_mask(compressed), mask)
    assert np.array_equal(rle_to_mask({**compressed, "counts": compressed["counts"].decode()}), mask)  # JSON str


def test_bad_rle_is_rejected():
    with pytest.raises(ValueError, match="H\\*W"):
        rle_to_mask({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(ValueError, match="negatives"):
        rle_to_mask({"size": [1, 2], "counts": [3, -1]})
    with pytest.raises(ValueError, match="'size' and 'counts'"):
        rle_to_mask({"counts": [4]})
    with pytest.raises(ValueError, match="2-D"):
        mask_to_rle(np.zeros(4, bool))


# ---------------------------------------------------------------- PNG
def test_png_round_trip_and_bytes(tmp_path):
    mask = random_mask(7)
    data = mask_to_png(mask)
    img = Image.open(io.BytesIO(data))
    assert img.mode == "L" and set(np.unique(np.asarray(img))) <= {0, 255}
    assert np.array_equal(np.asarray(img) == 255, mask)
    assert mask_to_png(mask) == data  # same mask, same bytes (the SynthCRAG writer relies on it)
    assert np.array_equal(png_to_mask(data), mask)
    (tmp_path / "m.png").write_bytes(data)
    assert np.array_equal(read_mask_png(ObjectStore(), str(tmp_path / "m.png")), mask)
    with pytest.raises(ValueError, match="2-D"):
        mask_to_png(np.zeros((2, 2, 3)))


def test_any_non_zero_pixel_is_inside():
    grey01 = np.array([[0, 1], [2, 0]], np.uint8)  # a 0/1 label PNG, as many datasets ship them
    buf = io.BytesIO()
    Image.fromarray(grey01).save(buf, format="PNG")
    assert png_to_mask(buf.getvalue()).tolist() == [[False, True], [True, False]]
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 1] = (200, 30, 30)
    assert mask_from_image(Image.fromarray(rgb)).tolist() == [[False, True], [False, False]]


# ---------------------------------------------------------------- COCO segmentations
SQUARE = [2, 2, 8, 2, 8, 8, 2, 8]  # x, y pairs: a 6 x 6 square


def test_polygons_sum_over_parts_like_lisa():
    m = decode_coco_segmentation([SQUARE], 12, 10)
    assert m.dtype == np.uint8 and m.shape == (12, 10)
    expected = coco.decode(coco.frPyObjects([SQUARE], 12, 10))[..., 0]
    assert np.array_equal(m, expected) and m[5, 5] == 1 and m[0, 0] == 0
    overlap = decode_coco_segmentation([SQUARE, SQUARE], 12, 10)
    assert overlap.max() == 2 and np.array_equal(overlap, 2 * m)  # overlapping parts give 2, as LISA's loader


def test_rle_segmentations_uncompressed_compressed_and_lists():
    mask = np.zeros((6, 5), bool)
    mask[1:4, 2:5] = True
    rle = mask_to_rle(mask)
    compressed = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    compressed = {**compressed, "counts": compressed["counts"].decode()}  # as instances.json stores it
    assert np.array_equal(decode_coco_segmentation(rle, 6, 5), mask.astype(np.uint8))
    assert np.array_equal(decode_coco_segmentation(compressed, 6, 5), mask.astype(np.uint8))
    assert np.array_equal(decode_coco_segmentation([rle, compressed], 6, 5), 2 * mask.astype(np.uint8))
    assert not decode_coco_segmentation([], 6, 5).any()
    with pytest.raises(ValueError, match="size \\[6, 5\\].*\\[7, 5\\]"):
        decode_coco_segmentation(rle, 7, 5)


def test_without_pycocotools_polygons_fall_back_to_pil(monkeypatch, caplog):
    expected = decode_coco_segmentation([SQUARE], 12, 10)
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # `from pycocotools import mask` now raises ImportError
    monkeypatch.setattr(masks, "_warned", False)
    with caplog.at_level("WARNING", logger="pixsearch_core.masks"):
        fallback = decode_coco_segmentation([SQUARE], 12, 10)
    assert "pycocotools is not installed" in caplog.text
    assert (fallback >= expected).all()  # PIL fills every pixel COCO does, and also the polygon's far edges:
    ys, xs = np.nonzero(fallback != expected)
    assert len(ys) and set(ys.tolist()) | set(xs.tolist()) <= {2, 3, 4, 5, 6, 7, 8} and ((ys == 8) | (xs == 8)).all()
    with pytest.raises(ImportError, match="pycocotools"):
        rle_to_mask({"size": [1, 1], "counts": "1"})

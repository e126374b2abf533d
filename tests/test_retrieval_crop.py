"""Region crops: box, padding, background painting, and the searcher routing RegionQuery to the image index."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixsearch_core.retrieval.crop import RegionCrop, crop_to_mask, mask_box, padded_box
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery


def _scene():
    img = np.zeros((20, 30, 3), np.uint8)
    img[:] = (10, 20, 30)
    mask = np.zeros((20, 30), bool)
    mask[5:10, 10:20] = True  # box x 10..20, y 5..10
    img[mask] = (200, 100, 50)
    return img, mask


def test_box_and_padding_clip_to_image():
    _, mask = _scene()
    assert mask_box(mask) == (10, 5, 20, 10)
    assert padded_box((10, 5, 20, 10), (20, 30), 0.2) == (8, 4, 22, 11)
    assert padded_box((0, 0, 30, 20), (20, 30), 0.5) == (0, 0, 30, 20)
    with pytest.raises(ValueError, match="padding"):
        padded_box((0, 0, 1, 1), (2, 2), -0.1)


def test_crop_array_and_pil_agree_and_background_is_painted():
    img, mask = _scene()
    a = crop_to_mask(img, mask, padding=0.2, background=(255, 255, 255))
    p = np.asarray(crop_to_mask(Image.fromarray(img), mask, padding=0.2, background=(255, 255, 255)))
    assert a.shape == (7, 14, 3) and np.array_equal(a, p)
    assert (a[0, 0] == 255).all() and (a[3, 5] == (200, 100, 50)).all()
    plain = crop_to_mask(img, mask, padding=0.2)
    assert (plain[0, 0] == (10, 20, 30)).all()
    assert (img[0, 0] == (10, 20, 30)).all(), "the caller's image must not be modified"


def test_errors():
    img, mask = _scene()
    with pytest.raises(ValueError, match="empty mask"):
        crop_to_mask(img, np.zeros_like(mask))
    with pytest.raises(ValueError, match="does not match"):
        crop_to_mask(img, mask[:10])
    with pytest.raises(ValueError):
        RegionCrop(padding=-1)


def test_searcher_routes_region_queries_to_the_image_index_with_the_crop():
    from indexing.searcher import ShardedSearcher

    img, mask = _scene()
    s = ShardedSearcher.__new__(ShardedSearcher)  # only the query plumbing, no index needed
    s.region_padding, s.region_background = 0.0, (0, 0, 0)
    assert ShardedSearcher._index_for(RegionQuery(img, mask)) == "image"
    crop = s._pixels(RegionQuery(img, mask))
    assert crop.shape == (5, 10, 3) and (crop == (200, 100, 50)).all()
    assert s._pixels(ImageQuery(img)) is img

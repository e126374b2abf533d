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
    s.crop = RegionCrop(padding=0.0, background=(0, 0, 0), component="largest")
    assert ShardedSearcher._index_for(RegionQuery(img, mask)) == "image"
    crop = s._pixels(RegionQuery(img, mask))
    assert crop.shape == (5, 10, 3) and (crop == (200, 100, 50)).all()
    assert s._pixels(ImageQuery(img)) is img


def test_crop_follows_the_largest_piece_of_a_mask_not_its_stray_pixels():
    """A predicted mask: the object (a 10x10 block) and two stray pixels in far corners."""
    from pixsearch_core.retrieval.crop import crop_to_mask, largest_component

    img = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    mask = np.zeros((64, 64), bool)
    mask[20:30, 30:40] = True
    mask[0, 0] = mask[63, 63] = True
    piece = largest_component(mask)
    assert piece.sum() == 100 and not piece[0, 0] and not piece[63, 63]
    np.testing.assert_array_equal(crop_to_mask(img, mask), img[20:30, 30:40])
    np.testing.assert_array_equal(crop_to_mask(img, mask, padding=0.1), img[19:31, 29:41])
    np.testing.assert_array_equal(crop_to_mask(img, mask, component="all"), img)
    painted = crop_to_mask(img, mask, background=(255, 255, 255), component="largest")
    np.testing.assert_array_equal(painted, img[20:30, 30:40])  # the piece fills its own box
    diagonal = np.eye(8, dtype=bool)  # 8-connected: one piece
    assert largest_component(diagonal).sum() == 8
    with pytest.raises(ValueError, match="component 'biggest'; allowed"):
        crop_to_mask(img, mask, component="biggest")


def test_crop_to_mask_box():
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    mask = np.zeros((6, 8), bool)
    mask[1, 2] = mask[3, 5] = True
    assert mask_box(mask) == (2, 1, 6, 4)
    assert np.array_equal(crop_to_mask(image, mask, component="all"), image[1:4, 2:6])
    assert np.array_equal(crop_to_mask(image, mask), image[1:2, 2:3])  # default: the largest piece (a tie: first)
    assert crop_to_mask(Image.fromarray(image), mask, component="all").size == (4, 3)
    with pytest.raises(ValueError, match="empty mask"):
        crop_to_mask(image, np.zeros((6, 8), bool))


def _disc_scene(size: int = 64):
    """A red disc on a grey background with light noise, its exact mask, and a rough mask: the disc shrunk and
    shifted so that it misses part of the disc and covers some background (drawn at `size` pixels a side)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] * (64 / size)
    disc = (yy - 32) ** 2 + (xx - 30) ** 2 < 14**2
    img = np.full((size, size, 3), 170, np.uint8)
    img[disc] = (220, 40, 40)
    img = np.clip(img.astype(int) + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
    rough = (yy - 33) ** 2 + (xx - 35) ** 2 < 12**2  # spills over the disc's right edge
    return img, disc, rough


def test_snap_moves_a_rough_mask_onto_the_object_edge():
    from pixsearch_core.retrieval.crop import snap_to_segments

    img, disc, rough = _disc_scene()
    assert (rough & ~disc).any() and (disc & ~rough).any()  # the rough mask is wrong on both sides
    snapped = snap_to_segments(img, rough, 0.3)
    assert np.array_equal(snapped, disc)
    # the crop paints exactly the background white: the box is the disc's, every disc pixel kept
    crop = crop_to_mask(img, rough, background=(255, 255, 255), snap=0.3)
    x0, y0, x1, y1 = mask_box(disc)
    assert crop.shape == (y1 - y0, x1 - x0, 3)
    inside = disc[y0:y1, x0:x1]
    assert np.array_equal(crop[inside], img[y0:y1, x0:x1][inside]) and (crop[~inside] == 255).all()
    # without snap the rough mask's own box and pixels are used
    x0, y0, x1, y1 = mask_box(rough)
    assert crop_to_mask(img, rough, background=(255, 255, 255)).shape == (y1 - y0, x1 - x0, 3)
    # a PIL image and a grey (H, W) image go through the same path
    assert np.array_equal(
        np.asarray(RegionCrop(padding=0, snap=0.3).apply(Image.fromarray(img), rough)),
        crop_to_mask(img, rough, snap=0.3),
    )
    assert np.array_equal(snap_to_segments(img.mean(axis=2).astype(np.uint8), rough, 0.3), disc)


def test_snap_keeps_the_mask_when_no_segment_is_covered_enough_and_rejects_bad_shares():
    from pixsearch_core.retrieval.crop import snap_to_segments

    img, disc, _ = _disc_scene()
    speck = np.zeros_like(disc)
    speck[30:32, 28:30] = True  # 4 pixels of a ~600-pixel disc: no segment is 30% covered
    assert np.array_equal(snap_to_segments(img, speck, 0.3), speck)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="snap"):
            snap_to_segments(img, disc, bad)
        with pytest.raises(ValueError):
            RegionCrop(snap=bad)


def test_a_large_picture_is_segmented_downscaled_and_snaps_the_same(monkeypatch):
    import skimage.segmentation

    from pixsearch_core.retrieval.crop import SNAP_MAX_SIDE, snap_to_segments

    img, disc, rough = _disc_scene()
    big, big_disc, big_rough = _disc_scene(1536)
    seen = []
    real = skimage.segmentation.felzenszwalb
    monkeypatch.setattr(skimage.segmentation, "felzenszwalb", lambda a, **kw: seen.append(a.shape) or real(a, **kw))
    snapped = snap_to_segments(big, big_rough, 0.3)
    assert seen == [(SNAP_MAX_SIDE, SNAP_MAX_SIDE, 3)]  # not the 1536-px picture
    iou = (snapped & big_disc).sum() / (snapped | big_disc).sum()
    assert iou > 0.97, iou  # the disc, up to the downscaled segments' edge pixels
    seen.clear()
    assert np.array_equal(snap_to_segments(img, rough, 0.3), disc) and seen == [(64, 64, 3)]  # small: as it is


def test_painting_and_snapping_other_picture_modes_give_rgb():
    img, disc, rough = _disc_scene()
    want = crop_to_mask(img, rough, background=(255, 255, 255), snap=0.3)
    rgba = Image.fromarray(img).convert("RGBA")
    assert np.array_equal(
        np.asarray(RegionCrop(padding=0, background=(255, 255, 255), snap=0.3).apply(rgba, rough)), want
    )
    assert np.array_equal(crop_to_mask(np.asarray(rgba), rough, background=(255, 255, 255), snap=0.3), want)
    grey = img.mean(axis=2).astype(np.uint8)
    painted = crop_to_mask(grey, disc, background=(255, 255, 255))
    assert painted.shape[2] == 3 and (painted[0, 0] == 255).all()
    assert crop_to_mask(Image.fromarray(grey).convert("P"), disc, background=(0, 0, 0)).mode == "RGB"


def test_the_largest_piece_is_taken_before_snapping():
    """A predicted mask: most of the target disc, and a smaller stray blob over a third of a larger square. Snapped
    first, the blob would grow onto the square's segments and be the largest piece; the crop keeps the largest
    piece first, then snaps it onto the disc."""
    from pixsearch_core.retrieval.crop import largest_component, search_mask, snap_to_segments

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 20) ** 2 + (xx - 16) ** 2 < 8**2
    square = np.zeros((64, 64), bool)
    square[36:56, 36:56] = True  # 400 px
    img = np.full((64, 64, 3), 170, np.uint8)
    img[disc] = (220, 40, 40)
    img[square] = (40, 40, 220)
    img = np.clip(img.astype(int) + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
    piece = disc & (xx < 20)  # most of the disc
    stray = np.zeros((64, 64), bool)
    stray[36:48, 36:47] = True  # 132 px: a third of the square
    assert square.sum() > disc.sum() and piece.sum() > stray.sum() >= 0.3 * square.sum()
    mask = piece | stray
    old = largest_component(snap_to_segments(img, mask, 0.3))  # snapped first: a piece of the square
    assert old.sum() > disc.sum() and not (old & ~square).any()
    assert np.array_equal(search_mask(img, mask, "largest", 0.3), disc)
    white = (255, 255, 255)  # the searcher's crop keeps the disc: its box, the rest painted
    assert np.array_equal(
        RegionCrop(padding=0, background=white, snap=0.3).apply(img, mask), crop_to_mask(img, disc, background=white)
    )
    x0, y0, x1, y1 = mask_box(disc)
    assert crop_to_mask(img, mask, background=(255, 255, 255), snap=0.3).shape == (y1 - y0, x1 - x0, 3)
    # component="all" snaps every piece
    both = search_mask(img, mask, "all", 0.3)
    assert (both & disc).sum() == disc.sum() and (both & square).sum() > stray.sum()

import numpy as np
import pytest

from pixsearch_core.retrieval.crop import crop_to_mask, mask_box
from pixsearch_core.decoding.rle import mask_to_rle, rle_to_mask


def test_hand_worked_column_major_counts():
    # columns read top to bottom: col0 = [0, 1], col1 = [1, 1], col2 = [0, 0] -> 0 1 1 1 0 0
    mask = np.array([[0, 1, 0], [1, 1, 0]], dtype=bool)
    assert mask_to_rle(mask) == {"size": [2, 3], "counts": [1, 3, 2]}
    assert mask_to_rle(np.ones((2, 2), bool))["counts"] == [0, 4]  # starts with an empty run of zeros
    assert mask_to_rle(np.zeros((2, 2), bool))["counts"] == [4]


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_random_masks(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((rng.integers(1, 20), rng.integers(1, 20))) < rng.random()
    rle = mask_to_rle(mask)
    assert sum(rle["counts"]) == mask.size
    assert np.array_equal(rle_to_mask(rle), mask)


def test_bad_rle_is_rejected():
    with pytest.raises(ValueError, match="H\\*W"):
        rle_to_mask({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(ValueError, match="2-D"):
        mask_to_rle(np.zeros(4, bool))


def test_crop_to_mask_box():
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    mask = np.zeros((6, 8), bool)
    mask[1, 2] = mask[3, 5] = True
    assert mask_box(mask) == (2, 1, 6, 4)
    assert np.array_equal(crop_to_mask(image, mask, component="all"), image[1:4, 2:6])
    assert np.array_equal(crop_to_mask(image, mask), image[1:2, 2:3])  # default: the largest piece (a tie: first)
    from PIL import Image

    assert crop_to_mask(Image.fromarray(image), mask, component="all").size == (4, 3)
    with pytest.raises(ValueError, match="empty mask"):
        crop_to_mask(image, np.zeros((6, 8), bool))

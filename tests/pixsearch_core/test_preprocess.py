"""The encoders' pixel transforms, checked on images whose right output is known by hand."""

import warnings

import numpy as np
import torch

from pixsearch_core.modeling.preprocess import CLIP_MEAN, CLIP_STD, SAM_MEAN, SAM_STD, SamTransform, SquareTransform


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)  # as np.asarray(PIL image) returns
    return arr


def test_square_transform_scales_pads_with_the_mean_and_normalizes():
    arr = _read_only(np.full((8, 32, 3), 255, np.uint8))  # wide: padded above and below
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read-only input must not warn
        y = SquareTransform(32)(arr)
    assert y.shape == (3, 32, 32)
    white = (1.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(y[:, 16, 16], white, atol=1e-5)  # the image row in the middle
    assert torch.allclose(y[:, 0, 16], torch.zeros(3), atol=1e-5)  # padding is the mean colour: 0 once normalized


def test_sam_transform_resizes_the_longest_side_and_pads_bottom_right_with_zero():
    arr = _read_only(np.full((10, 20, 3), 128, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, (h, w) = SamTransform(40)(arr)
    assert (h, w) == (20, 40) and x.shape == (3, 40, 40)
    grey = (128.0 - torch.tensor(SAM_MEAN)) / torch.tensor(SAM_STD)
    assert torch.allclose(x[:, 5, 5], grey, atol=1e-4)
    assert torch.equal(x[:, 30, 5], torch.zeros(3))  # below the resized image: zero padding
    assert x[:, :20].abs().sum() > 0


def test_transforms_do_not_change_their_input():
    arr = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    before = arr.copy()
    SquareTransform(8)(arr)
    SamTransform(8)(arr)
    assert np.array_equal(arr, before)

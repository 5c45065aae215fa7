"""The Python API at the door (issue 30): every wrong input is one clear ValueError, and the
inputs that have a right answer get it (uint8 tensors, (B, H, W, C) arrays, numpy masks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import smooth_image
from vitrestore.tasks import load_model
from vitrestore.task import UnknownOption

RGB = smooth_image(np.random.default_rng(5), 40, 48)  # (H, W, 3) uint8


@pytest.fixture(scope="module")
def model(tiny_weights):
    return load_model(tiny_weights, device="cpu", backend="torch", precision="fp32", tile=0)


@pytest.fixture(scope="module")
def inpaint(tiny_inpaint_weights):
    return load_model(tiny_inpaint_weights, device="cpu", backend="torch", precision="fp32", tile=0)


@pytest.mark.parametrize("tile", [1, -5, 31, 2.5, True])
def test_bad_tile_is_refused(tiny_weights, tile):
    with pytest.raises(ValueError, match="tile must be"):
        load_model(tiny_weights, device="cpu", backend="torch", tile=tile)


@pytest.mark.parametrize("image, words", [
    (np.zeros((0, 0, 3), np.uint8), "empty"), (np.zeros(10, np.uint8), "image array, got shape (10,)"),
    (np.zeros((2, 3, 8, 8, 3), np.uint8), "got shape (2, 3, 8, 8, 3)"), (np.zeros((8, 8, 6), np.uint8), "C = 6"),
    (RGB.astype(np.float32), "divide by 255"), (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    (RGB.astype(np.int64), "unsupported array dtype int64"), (RGB > 9, "unsupported array dtype bool"),
    (torch.zeros(3, 8), "(C, H, W)"), (torch.zeros(3, 8, 8, dtype=torch.int32), "tensor dtype"),
    (torch.full((3, 8, 8), 200.0), "divide by 255")])
def test_bad_images_are_one_value_error(model, image, words):
    with pytest.raises(ValueError) as err:
        model(image)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_options_are_one_error(model):
    with pytest.raises(ValueError, match=r"sigma \(0-255 scale\) must be a number"):
        model(RGB, sigma="abc")
    with pytest.raises(ValueError, match="must be a number"):
        model(RGB, sigma=True)
    with pytest.raises(TypeError, match="unknown option 'sigmaa' for denoise .*did you mean 'sigma'"):
        model(RGB, sigmaa=25)
    assert issubclass(UnknownOption, ValueError)  # the CLI and the studio report it in one line


def test_uint8_tensor_matches_the_array_and_keeps_its_dtype(model):
    from_array = model(RGB)
    out = model(torch.from_numpy(RGB).permute(2, 0, 1))
    assert out.dtype == torch.uint8 and np.abs(out.permute(1, 2, 0).numpy().astype(int) - from_array).max() <= 1
    assert abs(float(out.float().mean()) - RGB.mean()) < 40  # not all white


def test_batches_and_gray_arrays_keep_their_layout(model):
    batch = model(np.stack([RGB, RGB[::-1].copy()]))
    assert batch.shape == (2, 40, 48, 3) and batch.dtype == np.uint8
    assert np.abs(batch[0].astype(int) - model(RGB)).max() <= 1
    gray = model(RGB[:, :, 0])
    assert gray.shape == (40, 48) and gray.dtype == np.uint8


def test_numpy_masks_work_and_a_wrong_size_is_named(inpaint):
    hole = np.zeros((40, 48), bool)
    hole[10:20, 12:24] = True
    as_tensor = inpaint(RGB, mask=torch.from_numpy(hole).float()[None, None], texture=False)
    for mask in (hole, hole.astype(np.uint8) * 255, hole.astype(np.float32), hole[:, :, None]):
        out = inpaint(RGB, mask=mask, texture=False)
        assert np.array_equal(out, as_tensor)
    assert np.array_equal(as_tensor[~hole], RGB[~hole])
    with pytest.raises(ValueError, match=r"mask has shape \(30, 48\); expected \(40, 48\)"):
        inpaint(RGB, mask=hole[:30])
    with pytest.raises(ValueError, match="texture must be True or False"):
        inpaint(RGB, mask=hole, texture="false")

"""TIFFs of every sample type (issue 30): float, signed and 32-bit integers are read when their
values fit a 16-bit image, and refused with the reason when they do not (NaN, out of range,
more than 4 channels), never called "not an image"."""
from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from conftest import smooth_image
from vitrestore.io.images import ImageReadError, read_image, supported_samples
from vitrestore.io.tiff_header import read_tiff_header

RGB = smooth_image(np.random.default_rng(1), 40, 48)  # (H, W, 3) uint8


def tiff(path, a: np.ndarray):
    assert cv2.imwrite(str(path), a[:, :, ::-1] if a.ndim == 3 else a)
    return path


def test_float_rgb_tiff_in_unit_range_reads_as_16_bit(tmp_path):
    img = read_image(tiff(tmp_path / "f.tif", (RGB / 255).astype(np.float32)))
    assert img.pixels.dtype == np.uint16 and img.pixels.shape == (40, 48, 3)
    assert np.abs(img.pixels / 65535 - RGB / 255).max() < 1e-4  # RGB order, values kept


def test_int16_rgb_tiff_keeps_its_values(tmp_path):
    a = RGB.astype(np.int16) * 100
    img = read_image(tiff(tmp_path / "i.tif", a))
    assert img.pixels.dtype == np.uint16 and (img.pixels == a).all()


@pytest.mark.parametrize("case, reason", [
    ("nan", "NaN or infinity"), ("float255", "must be in [0, 1]"), ("negative", "must fit in 0-65535"),
    ("uint32_big", "must fit in 0-65535")])
def test_tiff_samples_that_do_not_fit_say_why(tmp_path, case, reason):
    a = {"nan": (RGB / 255).astype(np.float32), "float255": RGB.astype(np.float32),
         "negative": RGB.astype(np.int16) - 100, "uint32_big": RGB[:, :, 0].astype(np.uint32) * 1000}[case]
    if case == "nan":
        a[3, 4, 1] = np.nan
    with pytest.raises(ImageReadError, match=reason.replace("[", r"\[").replace("]", r"\]")) as err:
        read_image(tiff(tmp_path / f"{case}.tif", a))
    assert "not an image" not in str(err.value)


def test_small_uint32_gray_tiff_reads():
    a = RGB[:, :, 0].astype(np.uint32) * 200
    assert supported_samples(a).dtype == np.uint16 and (supported_samples(a) == a).all()


def test_five_channels_are_refused_by_count():
    with pytest.raises(ImageReadError, match="5 channels"):
        supported_samples(np.zeros((8, 8, 5), np.uint8))


def _two_page_tiff(big_endian: bool) -> bytes:
    """A hand-made TIFF of two IFDs holding only width and length (enough for the header)."""
    o = ">" if big_endian else "<"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(o + "I", 8)

    def ifd(w, h, following):
        entries = struct.pack(o + "HHI", 256, 3, 1) + struct.pack(o + "HH", w, 0)
        entries += struct.pack(o + "HHI", 257, 4, 1) + struct.pack(o + "I", h)
        return struct.pack(o + "H", 2) + entries + struct.pack(o + "I", following)

    first = ifd(640, 480, 8 + 30)
    return head + first + ifd(10, 10, 0)


@pytest.mark.parametrize("big_endian", [False, True])
def test_tiff_header_reads_size_and_pages(big_endian):
    h = read_tiff_header(_two_page_tiff(big_endian))
    assert (h.width, h.height, h.pages) == (640, 480, 2)


def test_tiff_header_of_a_real_file_and_a_truncated_one(tmp_path):
    data = tiff(tmp_path / "i.tif", RGB.astype(np.int16)).read_bytes()
    h = read_tiff_header(data)
    assert (h.width, h.height, h.pages) == (48, 40, 1)
    with pytest.raises(ValueError, match="ends early"):
        read_tiff_header(data[:9])

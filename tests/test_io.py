import os

import numpy as np
import pytest

from vitrestore.io import images as io


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "out.png"

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        io.write_image(target, np.zeros((10, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_roundtrip_keeps_depth_and_channels(tmp_path):
    for shape, dtype, name in [((9, 11, 1), np.uint8, "g.png"), ((9, 11, 3), np.uint16, "c.png"),
                               ((9, 11, 4), np.uint8, "a.png"), ((9, 11, 3), np.uint16, "c.tif")]:
        a = (np.random.default_rng(0).random(shape) * np.iinfo(dtype).max).astype(dtype)
        io.write_image(tmp_path / name, a)
        b = io.read_image(tmp_path / name).pixels
        assert b.dtype == dtype and b.shape == shape and np.array_equal(a, b)


def test_orientation_ops_are_rotations():
    a = np.arange(6).reshape(2, 3, 1)
    assert io.apply_orientation(a, 6).shape == (3, 2, 1)
    assert np.array_equal(io.apply_orientation(a, 6)[:, :, 0], np.rot90(a[:, :, 0], -1))
    assert np.array_equal(io.apply_orientation(a, 8)[:, :, 0], np.rot90(a[:, :, 0], 1))
    assert np.array_equal(io.apply_orientation(a, 3)[:, :, 0], np.rot90(a[:, :, 0], 2))

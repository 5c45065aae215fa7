"""Hostile input: random and mutated bytes thrown at the image-reading path. Every case must end
in a clean ImageReadError (or a valid image), never another exception, a hang or a huge
allocation; oversized headers are refused before decoding."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import smooth_image
from vitrestore.io.images import ImageReadError, read_image


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(smooth_image(np.random.default_rng(0), 24, 32)).save(buf, fmt)
    return buf.getvalue()


SEEDS = {fmt: encoded(fmt) for fmt in ("PNG", "JPEG", "TIFF", "WEBP", "BMP")}
FUZZ = settings(max_examples=120, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_bytes(tmp_path, data: bytes, name: str = "fuzz.img"):
    p = tmp_path / name
    p.write_bytes(data)
    try:
        img = read_image(p, max_pixels=4_000_000)
    except ImageReadError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    assert img.pixels.ndim == 3 and img.pixels.shape[2] in (1, 2, 3, 4)
    return img


@FUZZ
@given(data=st.binary(min_size=0, max_size=2048))
def test_random_bytes(tmp_path, data):
    read_bytes(tmp_path, data)


@FUZZ
@given(fmt=st.sampled_from(sorted(SEEDS)), edits=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 10_000)))
def test_mutated_valid_files(tmp_path, fmt, edits, cut):
    data = bytearray(SEEDS[fmt])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    read_bytes(tmp_path, bytes(data))


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)  # a tiny payload claiming a gigantic image
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(ImageReadError, match="too large.*limit"):
        read_image(p)
    with pytest.raises(ImageReadError, match="limit 1 MP"):
        read_image(p, max_pixels=1_000_000)

"""Size and page count of a TIFF from its first image file directory (IFD), without decoding.

Pillow cannot open the TIFFs it has no mode for (several channels of float, int16 or int32
samples, common from scientific and HDR tools); OpenCV decodes them but has no header-only
read. This parser reads what the size guard needs: width, height, and how many pages follow.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

_WIDTH, _LENGTH = 256, 257
_TYPE_SIZE = {3: 2, 4: 4, 16: 8}  # SHORT, LONG, LONG8 (BigTIFF): the types a width or height may have
MAX_PAGES = 10_000  # a longer IFD chain is a loop or a hostile file: counted no further


@dataclass(frozen=True)
class TiffHeader:
    width: int
    height: int
    pages: int


def is_tiff(data: bytes) -> bool:
    return data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def read_tiff_header(data: bytes) -> TiffHeader:
    """The first page's size and the number of pages; ValueError for a damaged header."""
    if not is_tiff(data):
        raise ValueError("not a TIFF")
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets and counts
    try:
        offset = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        first = _read_ifd(data, order, big, offset)
        width, height, offset = first
        pages, seen = 1, {offset}
        while offset and pages < MAX_PAGES:
            _, _, offset = _read_ifd(data, order, big, offset)
            if offset in seen:
                break
            seen.add(offset)
            pages += 1
    except struct.error:
        raise ValueError("TIFF header ends early") from None
    if width <= 0 or height <= 0:
        raise ValueError("TIFF header has no image width or height")
    return TiffHeader(width, height, pages)


def _read_ifd(data: bytes, order: str, big: bool, offset: int) -> tuple[int, int, int]:
    """(width, height, next IFD offset) of the IFD at `offset` (width/height 0 when absent)."""
    count_fmt, entry_size, head = ("Q", 20, 8) if big else ("H", 12, 2)
    (count,) = struct.unpack_from(order + count_fmt, data, offset)
    size = {_WIDTH: 0, _LENGTH: 0}
    for k in range(count):
        at = offset + head + k * entry_size
        tag, kind = struct.unpack_from(order + "HH", data, at)
        if tag in size and kind in _TYPE_SIZE:
            value_at = at + (12 if big else 8)  # the value sits in the entry when it fits
            size[tag] = struct.unpack_from(order + {2: "H", 4: "I", 8: "Q"}[_TYPE_SIZE[kind]], data, value_at)[0]
    (following,) = struct.unpack_from(order + ("Q" if big else "I"), data, offset + head + count * entry_size)
    return size[_WIDTH], size[_LENGTH], following

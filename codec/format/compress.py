"""zstd in one place: the level every writer uses, and a bounded decoder for untrusted bytes
(they never inflate past the size the caller expects)."""

from __future__ import annotations

import zstandard

# Level 19: everything we compress is written once and read many times, so the slow, tight end
# of zstd's range is the right one; decoding speed does not depend on the level.
ZSTD_LEVEL = 19


def compressor() -> zstandard.ZstdCompressor:
    """The compressor for every stored payload: ZSTD_LEVEL, with the content size in each frame."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)


def decompress_exact(data: bytes, size: int) -> bytes:
    """zstd-decode ``data`` (one frame, or several back to back) to exactly ``size`` bytes;
    ValueError, saying why, otherwise."""
    try:
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
            raw = reader.read(size + 1)  # one byte past the bound is enough to tell "too big"
    except zstandard.ZstdError as e:
        raise ValueError(f"does not decompress ({e})") from None
    if len(raw) != size:
        raise ValueError(f"holds {'more than ' if len(raw) > size else ''}{len(raw)} bytes, expected {size}")
    return raw

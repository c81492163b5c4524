"""zstd with a bound: untrusted bytes never inflate past the size the caller expects."""

from __future__ import annotations

import zstandard


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

"""zstd with a bound: untrusted bytes never inflate past the size the caller expects."""

from __future__ import annotations

import zstandard


def decompress_exact(data: bytes, size: int) -> bytes:
    """zstd-decode ``data`` to exactly ``size`` bytes; ValueError, saying why, otherwise."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    except zstandard.ZstdError as e:
        raise ValueError(f"does not decompress ({e})") from None
    if len(raw) != size:
        raise ValueError(f"holds {len(raw)} bytes, expected {size}")
    return raw

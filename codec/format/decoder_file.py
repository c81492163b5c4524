"""The decoder file as it is stored and sent: safetensors bytes, their sha256, and the zstd
coding that travels (one frame per tensor). No torch: the server and the store check and send
decoders without building one.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

from .compress import compressor, decompress_exact
from .errors import ModelError

MAX_SAFETENSORS_HEADER = 16 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _frame_spans(data: bytes) -> list[tuple[int, int]]:
    """Where compress_decoder cuts a safetensors file: the header, then each tensor's bytes, small
    neighbours merged. One zstd frame per span gives every layer's codes their own literal
    statistics; a single frame over the whole file codes about 3 % larger. A file that does not
    parse as safetensors is one span."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        entries = json.loads(data[8 : 8 + n])
        starts = sorted(8 + n + int(v["data_offsets"][0]) for k, v in entries.items() if k != "__metadata__")
    except (struct.error, ValueError, TypeError, KeyError):
        return [(0, len(data))]
    cuts = [0]
    for s in [8 + n, *starts, len(data)]:
        if s - cuts[-1] >= MIN_FRAME_BYTES and s < len(data):
            cuts.append(s)
    return list(zip(cuts, cuts[1:] + [len(data)]))


MIN_FRAME_BYTES = 4096  # below this a frame's own header and tables cost more than they save


def compress_decoder(data: bytes) -> bytes:
    """What travels and what the benchmark's `total` counts: the decoder file as zstd frames back
    to back, one per tensor (a stream any zstd decoder reads as the whole file)."""
    zc = compressor()
    return b"".join(zc.compress(data[a:b]) for a, b in _frame_spans(data))


MAX_DECODER_BYTES = 1 << 30


def decompress_decoder(data: bytes, expected_size: int) -> bytes:
    """Inverse of compress_decoder, refusing to inflate past ``expected_size`` (at most 1 GiB)."""
    if not 0 < expected_size <= MAX_DECODER_BYTES:
        raise ModelError(f"decoder size {expected_size} is out of range")
    try:
        return decompress_exact(data, expected_size)
    except ValueError as e:
        raise ModelError(f"decoder download {e}") from None


def check_safetensors_header(data: bytes, what: str) -> None:
    """Reject a malformed or oversized header before safetensors allocates anything for it."""
    if len(data) < 8:
        raise ModelError(f"{what}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_SAFETENSORS_HEADER or 8 + n > len(data):
        raise ModelError(f"{what}: safetensors header claims {n} bytes, file has {len(data)}")
    try:
        json.loads(data[8 : 8 + n])
    except ValueError:
        raise ModelError(f"{what}: safetensors header is not valid JSON") from None



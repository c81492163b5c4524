"""The decoder file as it is stored and sent: safetensors bytes, their sha256, and the coding
that travels (one zstd frame or rANS payload per tensor). No torch: the server and the store
check and send decoders without building one.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass

from . import rans
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


@dataclass(frozen=True)
class TensorSpan:
    """Where one tensor's bytes lie in a safetensors file, as its header says."""

    dtype: str  # safetensors' name: "I8", "F16", "F32", ...
    shape: tuple[int, ...]
    offset: int  # from the start of the file
    length: int


def tensor_layout(data: bytes) -> dict[str, TensorSpan]:
    """Each tensor's span in safetensors ``data`` (the header alone is read); ValueError where
    the header does not parse or a span falls outside the file."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        entries = json.loads(data[8 : 8 + n])
        out = {}
        for k, v in entries.items():
            if k == "__metadata__":
                continue
            a, b = (8 + n + int(o) for o in v["data_offsets"])
            out[k] = TensorSpan(str(v["dtype"]), tuple(int(d) for d in v["shape"]), a, b - a)
    except (struct.error, ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"not a safetensors header ({e})") from None
    if any(s.offset < 8 + n or s.length < 0 or s.offset + s.length > len(data) for s in out.values()):
        raise ValueError("a tensor lies outside the file")
    return out


def _frame_spans(data: bytes) -> list[tuple[int, int, bool]]:
    """Where compress_decoder cuts a safetensors file: the header, then each tensor's bytes, small
    neighbours merged, each span saying whether it is exactly one int8 tensor (weight codes, which
    the rANS coder may take). One frame per span gives every layer's codes their own statistics;
    a single zstd frame over the whole file codes about 3 % larger. A file that does not parse as
    safetensors is one span."""
    try:
        layout = tensor_layout(data)
    except ValueError:
        return [(0, len(data), False)]
    tensors = {s.offset: (s.offset + s.length, s.dtype == "I8") for s in layout.values()}
    (n,) = struct.unpack("<Q", data[:8])
    cuts = [0]
    for s in [8 + n, *sorted(tensors), len(data)]:
        if s - cuts[-1] >= MIN_FRAME_BYTES and s < len(data):
            cuts.append(s)
    spans = list(zip(cuts, cuts[1:] + [len(data)]))
    return [(a, b, tensors.get(a, (None, False)) == (b, True)) for a, b in spans]


MIN_FRAME_BYTES = 4096  # below this a frame's own header and tables cost more than they save

# The download's framing: the magic, then spans of (u8 coding, u32 raw bytes, u32 coded bytes,
# payload), where coding is SPAN_ZSTD (one zstd frame) or SPAN_RANS (codec.format.rans). Files
# written before it are bare zstd frames, told apart by zstd's own magic.
WIRE_MAGIC = b"LCW1"
SPAN_ZSTD, SPAN_RANS = 0, 1
# rANS decodes in numpy steps, 15-70 ms for a decoder where zstd takes under 1 ms, all of it
# before the first frame: it ships only where it saves at least 1 % of a tensor's bytes. Dense
# codes rarely clear that (zstd is within 1 % of their entropy); sparse, pruned ones do.
RANS_MIN_SAVING = 0.99
_SPAN = struct.Struct("<BII")


def compress_decoder(data: bytes) -> bytes:
    """What travels and what every reported `total` counts: the decoder file as one coded span per
    tensor, each weight-code tensor rANS-coded where that is clearly smaller than its zstd frame."""
    zc = compressor()
    out = [WIRE_MAGIC]
    for a, b, codes in _frame_spans(data):
        kind, payload = SPAN_ZSTD, zc.compress(data[a:b])
        if codes:
            coded = rans.encode(data[a:b])
            if len(coded) < RANS_MIN_SAVING * len(payload):
                kind, payload = SPAN_RANS, coded
        out += [_SPAN.pack(kind, b - a, len(payload)), payload]
    return b"".join(out)


MAX_DECODER_BYTES = 1 << 30


def wire_spans(data: bytes):
    """(coding, raw bytes, payload) of each span of a download compress_decoder wrote, in order;
    ValueError where the framing is malformed."""
    pos = len(WIRE_MAGIC)
    while pos < len(data):
        if pos + _SPAN.size > len(data):
            raise ValueError("ends inside a span header")
        kind, raw, coded = _SPAN.unpack_from(data, pos)
        pos += _SPAN.size
        if pos + coded > len(data) or kind not in (SPAN_ZSTD, SPAN_RANS):
            raise ValueError("has a malformed span")
        yield kind, raw, data[pos : pos + coded]
        pos += coded


def _decode_spans(data: bytes, expected_size: int) -> bytes:
    out, left = [], expected_size
    for kind, raw, payload in wire_spans(data):
        if raw > left:
            raise ValueError(f"holds more than the {expected_size} bytes expected")
        out.append(decompress_exact(payload, raw) if kind == SPAN_ZSTD else rans.decode(payload, raw))
        left -= raw
    if left:
        raise ValueError(f"holds {expected_size - left} bytes, expected {expected_size}")
    return b"".join(out)


def decompress_decoder(data: bytes, expected_size: int) -> bytes:
    """Inverse of compress_decoder, refusing to inflate past ``expected_size`` (at most 1 GiB)."""
    if not 0 < expected_size <= MAX_DECODER_BYTES:
        raise ModelError(f"decoder size {expected_size} is out of range")
    try:
        if data.startswith(WIRE_MAGIC):
            return _decode_spans(data, expected_size)
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



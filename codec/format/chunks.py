"""The per-chunk latent coding: delta, pack, zstd. A chunk of frames is coded as::

    q[0]                         the first frame, directly
    (q[t] - q[t-1]) mod 2**bits  every later frame, as a difference from the previous one
        |
        v  laid out dimension-major (each dimension's time series is contiguous)
    packed 8 // bits to a byte   at 4 bits or fewer (container version 2; version 1 kept one
        |                        symbol per byte)
        v
    zstd frame                   decodes on its own, so playback can start at any chunk

Working modulo ``2**bits`` keeps every symbol within ``bits`` and makes the inverse exact.
Packing matters because zstd's Huffman stage spends at least one bit on every byte: a 2-bit
symbol that carries about one bit of information would cost most of two in its own byte.
"""

from __future__ import annotations

import numpy as np

from .compress import compressor, decompress_exact
from .errors import CorruptContainer


def frames_in(chunk_start: int, n_frames: int, start: int, stop: int) -> slice:
    """The rows of a chunk (frames ``chunk_start`` .. ``chunk_start + n_frames``) that fall in
    [start, stop): a chunk only decodes whole, so a seek or a range trims it afterwards."""
    return slice(max(start, chunk_start) - chunk_start, max(0, min(stop, chunk_start + n_frames) - chunk_start))


def symbols_per_byte(bits: int, packed: bool = True) -> int:
    """How many ``bits``-bit symbols a payload byte holds: 8 // bits up to 4 bits when packed."""
    return 8 // bits if packed and bits <= 4 else 1


def encode_chunk(q: np.ndarray, bits: int, packed: bool = True) -> bytes:
    """Code quantized latents (n_frames, dim) of one chunk into a self-contained zstd frame;
    ``packed=False`` writes the one-symbol-per-byte payload of container version 1."""
    q = np.asarray(q, np.uint8)
    mask = (1 << bits) - 1
    coded = q.astype(np.int16)
    coded[1:] = (coded[1:] - q[:-1].astype(np.int16)) & mask
    symbols = np.ascontiguousarray(coded.astype(np.uint8).T).ravel()
    per = symbols_per_byte(bits, packed)
    if per > 1:
        fields = np.zeros(-(-len(symbols) // per) * per, np.uint8)
        fields[: len(symbols)] = symbols
        fields = fields.reshape(-1, per)
        packed_bytes = np.zeros(len(fields), np.uint8)
        for i in range(per):
            packed_bytes |= fields[:, i] << np.uint8(bits * i)
        symbols = packed_bytes
    return compressor().compress(symbols.tobytes())


def decode_chunk(payload: bytes, n_frames: int, dim: int, bits: int, packed: bool = True) -> np.ndarray:
    """Inverse of :func:`encode_chunk`; raises CorruptContainer on a bad payload."""
    count = n_frames * dim
    per = symbols_per_byte(bits, packed)
    try:
        raw = decompress_exact(payload, -(-count // per))
    except ValueError as e:
        raise CorruptContainer(f"chunk payload {e}") from None
    data = np.frombuffer(raw, np.uint8)
    if per > 1:
        # Bits no field uses (the top two at 3 bits) and the fields padding the last byte are
        # zero in anything encode_chunk wrote.
        if bits * per < 8 and (data >> np.uint8(bits * per)).any():
            raise CorruptContainer(f"chunk payload has bits set outside its {bits}-bit symbols")
        mask = np.uint8((1 << bits) - 1)
        fields = np.stack([(data >> np.uint8(bits * i)) & mask for i in range(per)], axis=1).ravel()
        if fields[count:].any():
            raise CorruptContainer("chunk payload has data past its last symbol")
        data = fields[:count]
    elif data.max(initial=0) >> bits:
        raise CorruptContainer(f"chunk payload has values beyond {bits} bits")
    coded = data.reshape(dim, n_frames).T
    # Undo the deltas: a running sum modulo 2**bits.
    q = np.cumsum(coded.astype(np.int64), axis=0) & ((1 << bits) - 1)
    return q.astype(np.uint8)

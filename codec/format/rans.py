"""A static rANS coder for bytes read as int8 weight codes: exact integer arithmetic, so every
machine (and a JavaScript port) decodes the same symbols, bit for bit.

Why our own coder: constriction, the well-kept Python one, quantizes its probability tables
with rules of its own and has no JavaScript build, while the browser player must decode the
same weights. This one is small enough to write twice: a frequency table sent with the data,
32-bit states, 16-bit words, and no adaptation.

Lanes: the symbols are dealt round-robin to ``lanes`` independent rANS states (symbol i to
lane i % lanes), so numpy steps every lane at once and a decoder runs about 2,000 steps per
tensor however large it is. The words are stored in the order the decoder reads them (step by
step, lanes ascending within a step), so no lane needs an offset of its own.

Payload layout, little-endian::

    u8  lo, u8 hi             symbols lo..hi have a table entry (a symbol is byte ^ 0x80, so
                              int8 -128..127 are 0..255 in order)
    u16 freq[hi - lo + 1]     frequencies summing to 2**PROB_BITS
    u16 lanes
    u32 state[lanes]          each lane's final encoder state, in [2**16, 2**32)
    u16 words[...]            to the end of the payload

Decoding one symbol: slot = x & (2**PROB_BITS - 1); s is the symbol whose cumulative range
holds slot; x = freq[s] * (x >> PROB_BITS) + slot - cum[s]; if x < 2**16, x = x << 16 | next
word. A valid payload leaves every lane at 2**16 with every word read.
"""

from __future__ import annotations

import struct

import numpy as np

PROB_BITS = 15
_M = 1 << PROB_BITS
_LOW = 1 << 16  # lower bound of a normalized state; states stay below 2**32
SYMBOLS_PER_LANE = 2048
MAX_LANES = 0xFFFF
# A decoder runs one numpy step per symbol of a lane; a payload that would need more (too few
# lanes for its length) is refused rather than looped over for minutes.
MAX_STEPS = 1 << 16


def _to_symbols(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8) ^ np.uint8(0x80)


def frequencies(symbols: np.ndarray) -> np.ndarray:
    """Counts scaled to sum to 2**PROB_BITS, every symbol that occurs kept at 1 or more; the
    rounding goes to (or comes from) the commonest symbol, where it costs least."""
    counts = np.bincount(symbols, minlength=256).astype(np.int64)
    if not counts.sum():
        return np.zeros(256, np.int64)
    freq = counts * _M // counts.sum()
    freq[(counts > 0) & (freq == 0)] = 1
    while (excess := int(freq.sum()) - _M) != 0:
        top = int(np.argmax(freq))
        freq[top] -= min(excess, int(freq[top]) - 1)
    return freq


def _lane_grid(n: int, lanes: int) -> tuple[int, int]:
    """(steps, lanes active at the last step) for n symbols dealt to ``lanes`` lanes."""
    steps = -(-n // lanes)
    return steps, n - (steps - 1) * lanes if steps else 0


def encode(data: bytes, lanes: int | None = None) -> bytes:
    """The payload for ``data`` (bytes read as int8 codes), with its own frequency table."""
    symbols = _to_symbols(data)
    n = len(symbols)
    lanes = lanes or min(MAX_LANES, max(1, n // SYMBOLS_PER_LANE))
    freq = frequencies(symbols)
    present = np.flatnonzero(freq)
    lo, hi = (int(present[0]), int(present[-1])) if len(present) else (0, 0)
    cum = np.concatenate([[0], np.cumsum(freq)[:-1]]).astype(np.uint64)
    freq64 = freq.astype(np.uint64)
    steps, last = _lane_grid(n, lanes)
    grid = np.zeros(steps * lanes, np.uint8)
    grid[:n] = symbols
    grid = grid.reshape(steps, lanes)
    x = np.full(lanes, _LOW, np.uint64)
    emitted: list[np.ndarray] = [np.empty(0, np.uint16)] * steps
    shift = np.uint64(32 - PROB_BITS)  # renormalize while x >= freq * 2**(32 - PROB_BITS)
    for t in range(steps - 1, -1, -1):
        k = last if t == steps - 1 else lanes
        s = grid[t, :k]
        f, xs = freq64[s], x[:k]
        need = xs >= (f << shift)
        emitted[t] = (xs[need] & np.uint64(0xFFFF)).astype(np.uint16)
        xs = np.where(need, xs >> np.uint64(16), xs)
        x[:k] = ((xs // f) << np.uint64(PROB_BITS)) + xs % f + cum[s]
    return b"".join([struct.pack("<BB", lo, hi), freq[lo : hi + 1].astype("<u2").tobytes(),
                     struct.pack("<H", lanes), x.astype("<u4").tobytes(),
                     *[w.astype("<u2").tobytes() for w in emitted]])


def decode(payload: bytes, n: int) -> bytes:
    """The ``n`` bytes ``encode`` coded into ``payload``; ValueError, saying why, for a payload
    that is malformed or does not decode to exactly ``n`` symbols."""
    if len(payload) < 2:
        raise ValueError("rANS payload is truncated")
    lo, hi = payload[0], payload[1]
    pos = 2 + 2 * (hi - lo + 1)
    if hi < lo or len(payload) < pos + 2:
        raise ValueError("rANS frequency table is malformed")
    freq = np.zeros(256, np.int64)
    freq[lo : hi + 1] = np.frombuffer(payload, "<u2", hi - lo + 1, 2)
    (lanes,) = struct.unpack_from("<H", payload, pos)
    pos += 2
    if n and (freq.sum() != _M or lanes == 0):
        raise ValueError("rANS frequency table does not sum to its precision")
    if len(payload) < pos + 4 * lanes or (len(payload) - pos - 4 * lanes) % 2:
        raise ValueError("rANS payload is truncated")
    x = np.frombuffer(payload, "<u4", lanes, pos).astype(np.uint64)
    words = np.frombuffer(payload, "<u2", offset=pos + 4 * lanes).astype(np.uint64)
    if not n:
        if len(words):
            raise ValueError("rANS payload holds words for no symbols")
        return b""
    if (x < _LOW).any():
        raise ValueError("rANS state out of range")
    sym_of_slot = np.repeat(np.arange(256, dtype=np.uint8), freq)
    cum = np.concatenate([[0], np.cumsum(freq)[:-1]])
    freq_of_slot = freq[sym_of_slot].astype(np.uint64)
    # slot - cum[s], never negative since a slot lies in its symbol's range
    offset_of_slot = (np.arange(_M) - cum[sym_of_slot]).astype(np.uint64)
    steps, last = _lane_grid(n, lanes)
    if steps > MAX_STEPS:
        raise ValueError(f"rANS payload has {lanes} lanes for {n} symbols, too few to decode")
    grid = np.empty((steps, lanes), np.uint8)
    mask, pb, low, ptr = np.uint64(_M - 1), np.uint64(PROB_BITS), np.uint64(_LOW), 0
    for t in range(steps):
        k = last if t == steps - 1 else lanes
        xs = x[:k]
        slot = xs & mask
        grid[t, :k] = sym_of_slot[slot]
        xs = freq_of_slot[slot] * (xs >> pb) + offset_of_slot[slot]
        need = xs < low
        m = int(np.count_nonzero(need))
        if m:
            if ptr + m > len(words):
                raise ValueError("rANS payload ends before its symbols do")
            xs[need] = (xs[need] << np.uint64(16)) | words[ptr : ptr + m]
            ptr += m
        x[:k] = xs
    if ptr != len(words) or (x != low).any():
        raise ValueError("rANS payload does not decode cleanly (damaged)")
    return (grid.reshape(-1)[:n] ^ np.uint8(0x80)).tobytes()

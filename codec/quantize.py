"""Latent quantization and the per-chunk delta + zstd coding.

Each latent dimension d is quantized uniformly over its own range [lo_d, hi_d] to
``2**bits`` levels. A chunk of frames is coded as::

    q[0]                         the first frame, directly
    (q[t] - q[t-1]) mod 2**bits  every later frame, as a difference from the previous one
        |
        v  laid out dimension-major (each dimension's time series is contiguous)
    zstd frame                   decodes on its own, so playback can start at any chunk

Working modulo ``2**bits`` keeps every symbol in one byte and makes the inverse exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import zstandard

from .compress import decompress_exact
from .errors import CorruptContainer, UsageError

MIN_BITS, MAX_BITS, DEFAULT_BITS = 1, 8, 4
ZSTD_LEVEL = 19


def check_bits(bits: int) -> int:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise UsageError(f"--bits must be between {MIN_BITS} and {MAX_BITS}, got {bits}")
    return bits


@dataclass(frozen=True)
class Quantizer:
    """Uniform per-dimension quantizer. ``lo``/``hi`` are float32 arrays of length latent_dim."""

    bits: int
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def fit(cls, latents: np.ndarray, bits: int) -> "Quantizer":
        """Ranges from the min and max of each dimension over all frames."""
        check_bits(bits)
        lat = np.asarray(latents, np.float32)
        return cls(bits, lat.min(axis=0).astype(np.float32), lat.max(axis=0).astype(np.float32))

    @property
    def levels(self) -> int:
        return (1 << self.bits) - 1

    @property
    def step(self) -> np.ndarray:
        span = (self.hi - self.lo).astype(np.float32)
        # A constant dimension still needs a non-zero step; it always quantizes to 0.
        return np.where(span > 0, span / np.float32(self.levels), np.float32(1)).astype(np.float32)

    def quantize(self, latents: np.ndarray) -> np.ndarray:
        q = np.rint((np.asarray(latents, np.float32) - self.lo) / self.step)
        return np.clip(q, 0, self.levels).astype(np.uint8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (self.lo + q.astype(np.float32) * self.step).astype(np.float32)


def fake_quantize(latents: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize in the forward pass with a straight-through gradient (for QAT)."""
    levels = (1 << bits) - 1
    step = torch.where(hi > lo, (hi - lo) / levels, torch.ones_like(hi))
    q = torch.clamp(torch.round((latents - lo) / step), 0, levels)
    deq = lo + q * step
    return latents + (deq - latents).detach()


MIN_WEIGHT_BITS, MAX_WEIGHT_BITS, DEFAULT_WEIGHT_BITS = 4, 8, 6


def check_weight_bits(bits: float, fractional: bool = False) -> float:
    """Refuse a weight width out of range; whole bits, or with ``fractional`` quarters (5.25)."""
    ok = isinstance(bits, (int, float)) and not isinstance(bits, bool) and MIN_WEIGHT_BITS <= bits <= MAX_WEIGHT_BITS
    if not ok or (bits * 4 if fractional else bits) % 1:
        raise UsageError(f"--weight-bits must be {'a multiple of 0.25 ' if fractional else 'a whole number '}between "
                         f"{MIN_WEIGHT_BITS} and {MAX_WEIGHT_BITS}, got {bits}")
    return bits


def top_code(bits: float) -> int:
    """The largest code magnitude of a ``bits``-bit weight: 2**(bits-1) - 1, so 6 bits are
    ±31. A fractional width gives the odd count of levels nearest 2**bits (5.5: ±22, 45 levels)."""
    return round(2 ** (bits - 1)) - 1


def quantize_weight(weight: torch.Tensor, bits: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel quantization: (int8 codes in ±top_code(bits), float32 scales).

    The scale is each channel's max |w| over the top code, so no weight clips. The trainer's
    fake quantization and the shipped file both go through here, so what training saw is
    exactly what clients decode with.
    """
    top = top_code(bits)
    w = weight.detach().float()
    scale = w.flatten(1).abs().amax(dim=1).clamp_min(1e-12) / top
    codes = torch.round(w / scale.view(-1, *([1] * (w.ndim - 1)))).clamp(-top, top)
    return codes.to(torch.int8), scale


def dequantize_weight(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 weights from int8 codes and per-output-channel scales (inverse of quantize_weight)."""
    return codes.float() * scale.float().view(-1, *([1] * (codes.ndim - 1)))


def fake_quantize_weight(weight: torch.Tensor, bits: float) -> torch.Tensor:
    """``weight`` as the shipped decoder will hold it, with a straight-through gradient."""
    deq = dequantize_weight(*quantize_weight(weight, bits))
    return weight + (deq.to(weight.dtype) - weight).detach()


def encode_chunk(q: np.ndarray, bits: int) -> bytes:
    """Code quantized latents (n_frames, dim) of one chunk into a self-contained zstd frame."""
    q = np.asarray(q, np.uint8)
    mask = (1 << bits) - 1
    coded = q.astype(np.int16)
    coded[1:] = (coded[1:] - q[:-1].astype(np.int16)) & mask
    layout = np.ascontiguousarray(coded.astype(np.uint8).T)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(layout.tobytes())


def decode_chunk(payload: bytes, n_frames: int, dim: int, bits: int) -> np.ndarray:
    """Inverse of :func:`encode_chunk`; raises CorruptContainer on a bad payload."""
    try:
        raw = decompress_exact(payload, n_frames * dim)
    except ValueError as e:
        raise CorruptContainer(f"chunk payload {e}") from None
    coded = np.frombuffer(raw, np.uint8).reshape(dim, n_frames).T
    if coded.max(initial=0) >> bits:
        raise CorruptContainer(f"chunk payload has values beyond {bits} bits")
    # Undo the deltas: a running sum modulo 2**bits.
    q = np.cumsum(coded.astype(np.int64), axis=0) & ((1 << bits) - 1)
    return q.astype(np.uint8)

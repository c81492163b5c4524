"""The latent quantizer: each latent dimension d is coded uniformly over its own range
[lo_d, hi_d] with ``2**bits`` levels. The range is the dimension's min and max over the movie,
clipped to percentiles at 2 bits and fewer (``latent_range``). numpy only: the server, the
viewer and the trainer all use this one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UsageError

# 3 bits is the default because a model fine-tuned for 3-bit codes sits on the efficient part of
# its rate-distortion curve; docs/experiments.md has the runs behind it.
MIN_BITS, MAX_BITS, DEFAULT_BITS = 1, 8, 3


def check_bits(bits: int) -> int:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise UsageError(f"--bits must be between {MIN_BITS} and {MAX_BITS}, got {bits}")
    return bits


# Encode-time refinement (codec.nn.refine) picks each frame's codes by a few gradient steps
# against the decoder instead of rounding the encoder's guess. 30 steps bought +0.33 dB for
# +0.5 % of the sample's total bytes at 10-20 times the plain encode's time (docs/experiments.md).
# Defined here, without torch, so every command's flags and checks load without it.
DEFAULT_REFINE_STEPS, MAX_REFINE_STEPS = 30, 1000


def check_refine_steps(steps: int) -> int:
    if not 0 <= steps <= MAX_REFINE_STEPS:
        raise UsageError(f"--refine-steps must be between 0 and {MAX_REFINE_STEPS}, got {steps}")
    return steps


# With 4 levels or fewer, a range from each dimension's min to its max spends the outer levels on
# a few outliers and leaves the bulk of the values between two levels. Clipping to the 3rd and
# 97th percentiles spreads the values over more levels: more bytes, but more quality than the
# same bytes buy by other means. At 3 bits and up it only moves along the curve, or loses.
CLIP_PERCENT = {1: 3.0, 2: 3.0}
RANGE_SAMPLE_FRAMES = 4096  # percentiles come from this many frames spread over a long movie


def spread_indices(n: int, k: int) -> np.ndarray:
    """At most ``k`` frame indices spread evenly over ``n`` frames (all of them when n <= k)."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def latent_range(latents: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension quantizer range (lo, hi) for ``bits``-bit codes of ``latents`` (n, dim):
    the min and max over all frames, or at 2 bits and fewer the percentiles in CLIP_PERCENT.
    ``latents`` may be a memmap; it is read in slices."""
    check_bits(bits)
    n = len(latents)
    pct = CLIP_PERCENT.get(bits)
    if pct is not None:
        lo, hi = np.percentile(np.asarray(latents[spread_indices(n, RANGE_SAMPLE_FRAMES)], np.float32),
                               [pct, 100 - pct], axis=0)
        return lo.astype(np.float32), hi.astype(np.float32)
    lo = np.full(latents.shape[1], np.inf, np.float32)
    hi = np.full(latents.shape[1], -np.inf, np.float32)
    for s in range(0, n, 4096):
        lo = np.minimum(lo, latents[s : s + 4096].min(0))
        hi = np.maximum(hi, latents[s : s + 4096].max(0))
    return lo.astype(np.float32), hi.astype(np.float32)


HALF_MAX = float(np.finfo(np.float16).max)


def half_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lo`` and ``hi`` rounded outward to float16 values (as float32), so a range stored in
    half precision still holds every value it held, and encoder and decoder use the same one."""
    lo = np.clip(np.asarray(lo, np.float32), -HALF_MAX, HALF_MAX)
    hi = np.clip(np.asarray(hi, np.float32), -HALF_MAX, HALF_MAX)
    lo16, hi16 = lo.astype(np.float16), hi.astype(np.float16)
    with np.errstate(over="ignore"):  # nextafter is evaluated at ±HALF_MAX too, where it is not taken
        lo16 = np.where(lo16.astype(np.float32) > lo, np.nextafter(lo16, np.float16(-np.inf)), lo16)
        hi16 = np.where(hi16.astype(np.float32) < hi, np.nextafter(hi16, np.float16(np.inf)), hi16)
    return lo16.astype(np.float32), hi16.astype(np.float32)


@dataclass(frozen=True)
class Quantizer:
    """Uniform per-dimension quantizer. ``lo``/``hi`` are float32 arrays of length latent_dim."""

    bits: int
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def fit(cls, latents: np.ndarray, bits: int) -> "Quantizer":
        """Ranges for ``bits`` from the latents of all frames (see :func:`latent_range`), rounded
        outward to float16 as the container stores them (:func:`half_ranges`)."""
        return cls(bits, *half_ranges(*latent_range(latents, bits)))

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



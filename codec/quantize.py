"""Latent quantization and the per-chunk delta + zstd coding.

Each latent dimension d is quantized uniformly over its own range [lo_d, hi_d] to
``2**bits`` levels (the range is the dimension's min and max, clipped at 2 bits and fewer:
see ``latent_range``). A chunk of frames is coded as::

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
symbol that carries about one bit of information cost most of two in its own byte. On cockatoo
at 320x180, packing saves 17 % of the latent bytes at 2 bits, 5 % at 3 and 3 % at 4; above 4
bits a byte holds one symbol either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import zstandard

from .compress import decompress_exact
from .errors import CorruptContainer, UsageError

# 3 bits: a model fine-tuned for 3 sends 28-29 % fewer bytes than one fine-tuned for 4, for
# 0.70 dB less on cockatoo (320x180, 10 minutes) and 0.01 dB less on realshort (320x240, 5).
# Against SVT-AV1 at the same rate that is +2.35 dB where 4 bits made +1.46 (+3.77 against +2.39).
MIN_BITS, MAX_BITS, DEFAULT_BITS = 1, 8, 3
ZSTD_LEVEL = 19


def check_bits(bits: int) -> int:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise UsageError(f"--bits must be between {MIN_BITS} and {MAX_BITS}, got {bits}")
    return bits


# With 4 levels or fewer, a range from each dimension's min to its max spends the outer levels on
# a few outliers and leaves the bulk of the values between two levels. Clipping to the 3rd and
# 97th percentiles costs more bits (the values spread over more levels) but buys more quality than
# the same bits buy at 3 bits: at 2 bits +2.2 dB for +21 % rate on cockatoo and +0.5 dB for +3 % on
# realshort (1 bit: +3.2 and +1.4 dB). At 3 bits clipping moves along the curve; at 4 and up it loses.
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


@dataclass(frozen=True)
class Quantizer:
    """Uniform per-dimension quantizer. ``lo``/``hi`` are float32 arrays of length latent_dim."""

    bits: int
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def fit(cls, latents: np.ndarray, bits: int) -> "Quantizer":
        """Ranges for ``bits`` from the latents of all frames (see :func:`latent_range`)."""
        return cls(bits, *latent_range(latents, bits))

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


def _step(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantizer.step for torch ranges: the width of one level."""
    return torch.where(hi > lo, (hi - lo) / ((1 << bits) - 1), torch.ones_like(hi))


def fake_quantize(latents: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize in the forward pass with a straight-through gradient (for QAT)."""
    step = _step(lo, hi, bits)
    q = torch.clamp(torch.round((latents - lo) / step), 0, (1 << bits) - 1)
    deq = lo + q * step
    return latents + (deq - latents).detach()


def add_quantization_noise(latents: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Latents plus uniform noise one quantizer step wide: rounding's error, but with a true
    gradient to the encoder (Balle et al.'s training proxy for quantization). An encoder trained
    through it learns to put its information where ``bits``-bit codes keep it."""
    return latents + (torch.rand_like(latents) - 0.5) * _step(lo, hi, bits)


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


def _per_output_channel(scale: torch.Tensor, ndim: int) -> torch.Tensor:
    """A scale per output channel, shaped to broadcast against a weight of ``ndim`` dims."""
    return scale.view(-1, *([1] * (ndim - 1)))


def _channel_scales(w: torch.Tensor, top: int) -> torch.Tensor:
    """Each output channel's max |w| over the top code, shaped to broadcast against ``w``."""
    return _per_output_channel(w.abs().amax(dim=tuple(range(1, w.ndim))).clamp_min(1e-12) / top, w.ndim)


def _codes(w: torch.Tensor, scales: torch.Tensor, top: int) -> torch.Tensor:
    return torch.round(w / scales).clamp_(-top, top)


def quantize_weight(weight: torch.Tensor, bits: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel quantization: (int8 codes in ±top_code(bits), float32 scales).

    The scale is each channel's max |w| over the top code, so no weight clips. The trainer's
    fake quantization goes through the same two steps, so what training saw is exactly what
    clients decode with.
    """
    top = top_code(bits)
    w = weight.detach().float()
    scales = _channel_scales(w, top)
    return _codes(w, scales, top).to(torch.int8), scales.flatten()


def dequantize_weight(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 weights from int8 codes and per-output-channel scales (inverse of quantize_weight)."""
    return codes.float() * _per_output_channel(scale.float(), codes.ndim)


class _FakeQuantizedWeight(torch.autograd.Function):
    """Forward: the weight as dequantize_weight(*quantize_weight(w)) gives it, bit for bit.
    Backward: the gradient straight through. As a Function it skips the int8 round trip and the
    ``w + (q - w).detach()`` trick's two extra passes, which made the QAT phase's steps slow."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, top: int) -> torch.Tensor:
        w = weight.detach()
        scales = _channel_scales(w, top)
        return _codes(w, scales, top).mul_(scales)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def fake_quantize_weight(weight: torch.Tensor, bits: float) -> torch.Tensor:
    """``weight`` as the shipped decoder will hold it, with a straight-through gradient."""
    return _FakeQuantizedWeight.apply(weight, top_code(bits))


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
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(symbols.tobytes())


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

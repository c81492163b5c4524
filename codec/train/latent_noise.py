"""What the decoder sees in place of the encoder's latents while training: quantization noise,
or the quantized latents themselves with a straight-through gradient."""

from __future__ import annotations

import torch


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

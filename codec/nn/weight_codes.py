"""The decoder's weight codes: symmetric per-output-channel integers of 2-8 bits (fractional
widths allowed) with a float scale per channel, and the fake quantization the trainer fits
them through. Training sees exactly the weights clients decode with.
"""

from __future__ import annotations

import torch

from .config import top_code


def _per_output_channel(scale: torch.Tensor, ndim: int) -> torch.Tensor:
    """A scale per output channel, shaped to broadcast against a weight of ``ndim`` dims."""
    return scale.view(-1, *([1] * (ndim - 1)))


def channel_scales(w: torch.Tensor, top: int) -> torch.Tensor:
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
    scales = channel_scales(w, top)
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
        scales = channel_scales(w, top)
        return _codes(w, scales, top).mul_(scales)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def fake_quantize_weight(weight: torch.Tensor, bits: float) -> torch.Tensor:
    """``weight`` as the shipped decoder will hold it, with a straight-through gradient."""
    return _FakeQuantizedWeight.apply(weight, top_code(bits))



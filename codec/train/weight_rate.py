"""A rate term for the decoder's weight codes, so training trades their bytes against PSNR.

The codes ship entropy-coded, tensor by tensor (codec.format.decoder_file), so a code near zero
costs fewer bits than one at the edge of its range. Under a Laplace model of a layer's codes
with mean magnitude b, a code of magnitude |u| costs |u| / (b ln 2) bits plus a constant: the
codes' L1 norm, each layer's over its own b, is the download's size up to a constant. Its
gradient pulls the weights that buy the least PSNR toward the zero code, where the coder makes
them cheap; the weights that matter hold their place against it.

How hard to pull comes from a slope, K dB of PSNR per doubling of the total bytes (decoder and
latents), the same unit as ``latentcast parts --rd-slope``. At PSNR = -10 log10(D), a bit more
download is worth dD = D (ln 10 / 10) K / (R ln 2) of MSE to a run on that slope, so the term
is D (ln 10 / 10) K / (R ln 2) times the codes' bits, with D the batch's MSE (held fixed) and R
the download as it will ship, estimated from the budget. A longer video spreads the decoder over
more latents, so the same slope pulls less.
"""

from __future__ import annotations

import math

import torch

from ..nn.config import top_code
from ..nn.model import QuantAwareConv2d, count_parameters
from ..nn.weight_codes import channel_scales

# zstd codes a movie's latents to about a third of their raw bits: 10.6 of the 30.7 kbit/s that
# 3-bit codes of 512 latents at 20 fps take raw, on the test movie (docs/experiments.md).
LATENT_CODING_RATIO = 0.35
# A layer whose codes are almost all zero would otherwise make its few others cost without bound.
_MIN_MEAN_CODE = 0.5


def code_bits(decoder: torch.nn.Module) -> torch.Tensor | None:
    """About the bits of the decoder's weight codes, up to a constant, differentiable in the
    weights; None while no layer computes through its codes."""
    terms = []
    for m in decoder.modules():
        if isinstance(m, QuantAwareConv2d) and m.fake_quant_bits is not None:
            magnitude = (m.weight / channel_scales(m.weight.detach(), top_code(m.fake_quant_bits))).abs()
            mean = magnitude.detach().mean().clamp_min(_MIN_MEAN_CODE)
            terms.append(magnitude.sum() / (mean * math.log(2)))
    return torch.stack(terms).sum() if terms else None


def download_bits(decoder: torch.nn.Module, weight_bits: float, frames: int, latent_dim: int, latent_bits: int
                  ) -> float:
    """The bits a viewer receives, as the run's budget foresees them: the decoder at
    ``weight_bits`` per weight, and the latents at their raw width times LATENT_CODING_RATIO."""
    return count_parameters(decoder) * weight_bits + frames * latent_dim * latent_bits * LATENT_CODING_RATIO


def weight_rate_loss(decoder: torch.nn.Module, mse: torch.Tensor, slope_db: float, total_bits: float
                     ) -> torch.Tensor | None:
    """The term to add to the loss for the weight codes' bits at ``slope_db`` per doubling of
    ``total_bits`` (see the module docstring); None while the weights are not yet coded."""
    bits = code_bits(decoder)
    if bits is None:
        return None
    price = mse.detach() * (math.log(10) / 10) * slope_db / (total_bits * math.log(2))
    return price * bits

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
import torch.distributed as dist

from ..nn.config import top_code
from ..nn.model import QuantAwareConv2d, count_parameters
from ..nn.weight_codes import channel_scales

# zstd codes a movie's latents to about a third of their raw bits: 10.6 of the 30.7 kbit/s that
# 3-bit codes of 512 latents at 20 fps take raw, on the test movie (docs/experiments.md).
LATENT_CODING_RATIO = 0.35
# A layer whose codes are almost all zero would otherwise make its few others cost without bound.
_MIN_MEAN_CODE = 0.5


class WeightRatePull:
    """Adds to each coded weight's gradient that of the codes' bits (see the module docstring),
    at ``slope_db`` per doubling of ``total_bits``.

    The gradient goes straight into ``.grad``: as a term of the loss its autograd graph took 3-4 ms
    a step on the ``large`` decoder, 9-14 times more (benchmarks/weight_rate_cost.py) and a sixth
    to a quarter of a 2-core step. Each layer's factor (its scales and mean code magnitude, which
    drift slowly) is measured every REFRESH_STEPS calls, so a step costs two passes over the
    weights. Under DDP the batch MSE that sets the price is the ranks'
    mean, so every rank adds the same gradient and the replicas stay equal.
    """

    REFRESH_STEPS = 25

    def __init__(self, slope_db: float, total_bits: float):
        self.unit_price = (math.log(10) / 10) * slope_db / (total_bits * math.log(2))
        self.factors: dict[torch.nn.Module, torch.Tensor] = {}
        self.calls = 0

    def add_gradient(self, decoder: torch.nn.Module, mse: torch.Tensor, distributed: bool = False) -> bool:
        """Add the term's gradient for a batch of ``mse``; False while no layer computes through its codes."""
        coded = [m for m in decoder.modules() if isinstance(m, QuantAwareConv2d) and m.fake_quant_bits is not None]
        if not coded:
            return False
        if self.calls % self.REFRESH_STEPS == 0 or any(m not in self.factors for m in coded):
            self.factors = {m: _factor(m.weight.detach(), m.fake_quant_bits) for m in coded}
        self.calls += 1
        price = mse.detach().float().clone()
        if distributed:
            dist.all_reduce(price)
            price /= dist.get_world_size()
        price = price.item() * self.unit_price
        with torch.no_grad():
            for m in coded:
                if m.weight.grad is None:
                    m.weight.grad = torch.zeros_like(m.weight)
                m.weight.grad.addcmul_(torch.sign(m.weight), self.factors[m], value=price)
        return True


def laplace_code_bits(weights: list[torch.Tensor], bits: float) -> torch.Tensor:
    """The codes' bits under the module's Laplace model, as a differentiable sum: the term as a
    loss, which WeightRatePull's written gradient must equal (the checks and the benchmark use it)."""
    total = torch.zeros(())
    for w in weights:
        magnitude = (w / channel_scales(w.detach(), top_code(bits))).abs()
        total = total + magnitude.sum() / (magnitude.detach().mean().clamp_min(_MIN_MEAN_CODE) * math.log(2))
    return total


def _factor(w: torch.Tensor, bits: float) -> torch.Tensor:
    """Per output channel, d/d|w| of |w / scale| / (mean ln 2): the Laplace code length's slope."""
    scale = channel_scales(w, top_code(bits))
    mean = (w.abs() / scale).mean().clamp_min(_MIN_MEAN_CODE)
    return 1 / (scale * mean * math.log(2))


def download_bits(decoder: torch.nn.Module, weight_bits: float, frames: int, latent_dim: int, latent_bits: int
                  ) -> float:
    """The bits a viewer receives, as the run's budget foresees them: the decoder at
    ``weight_bits`` per weight, and the latents at their raw width times LATENT_CODING_RATIO."""
    return count_parameters(decoder) * weight_bits + frames * latent_dim * latent_bits * LATENT_CODING_RATIO

"""Per-layer widths for the decoder's weight codes, chosen to fit a download budget.

A bit of weight precision is worth very different amounts in different layers. The widest
conv holds most of the weights, and each of them matters little: it feeds a PixelShuffle, and
its errors average out. The stem and the RGB head hold few weights, and each of them matters a
lot. One width for every layer therefore spends bytes where they buy least. Here each layer's
cost is measured at every width: the bytes its codes take, and the error they add to the
decoder's output when only that layer is quantized. Widths then come down greedily, where the
least error is added per byte saved, until the coded download fits the budget.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from ..format.decoder_file import compress_decoder
from ..format.errors import UsageError
from ..format.quantizer import spread_indices
from ..nn.config import MAX_WEIGHT_BITS, MIN_WEIGHT_BITS, top_code
from ..nn.model import count_parameters, set_weight_fake_quant
from ..nn.tensors import to_tensor
from ..nn.weight_codes import quantize_weight
from ..nn.weights import int8_state_bytes
from .distributed import broadcast

log = logging.getLogger(__name__)

# Bits per decoder parameter in the download, coded, scales and biases included. 4.6 loses
# almost nothing against float weights; 3.0, with the codes trained from half-way
# (TrainOptions.weight_qat_from), costs a model some PSNR for about 35 % fewer decoder bytes,
# which wins on total bytes wherever the decoder is most of the download (docs/experiments.md).
DEFAULT_WEIGHT_BUDGET = 3.0
MIN_WEIGHT_BUDGET, MAX_WEIGHT_BUDGET = 1.0, 16.0

# Quarter bits, because one whole bit of the widest layer moves the file by a sixth of its size;
# a quarter that gives the same codes as the one below it (2.25 bits are ternary, as 2 are) is
# left out, so it is neither measured nor chosen.
_QUARTERS = tuple(MIN_WEIGHT_BITS + i / 4 for i in range(4 * (MAX_WEIGHT_BITS - MIN_WEIGHT_BITS) + 1))
WIDTHS = tuple(w for i, w in enumerate(_QUARTERS) if i == 0 or top_code(w) != top_code(_QUARTERS[i - 1]))


def check_weight_budget(bits_per_weight: float) -> float:
    if not MIN_WEIGHT_BUDGET <= bits_per_weight <= MAX_WEIGHT_BUDGET:
        raise UsageError(f"--weight-budget must be between {MIN_WEIGHT_BUDGET:g} and {MAX_WEIGHT_BUDGET:g} bits "
                         f"per weight, got {bits_per_weight:g}")
    return bits_per_weight


def coded_size(codes: torch.Tensor) -> int:
    """About the bytes the download takes for one tensor of codes: their order-0 entropy, which
    its rANS span (or a zstd frame, where smaller) exceeds by well under 1 %. Counting is instant
    where coding every layer at every width took seconds; the real file settles the budget at
    the end."""
    counts = torch.bincount(codes.flatten().to(torch.int64) + 128, minlength=256).double()
    p = counts[counts > 0] / codes.numel()
    return math.ceil(-(p * torch.log2(p)).sum().item() * codes.numel() / 8)


@torch.no_grad()
def measure_layers(decoder: torch.nn.Module, latents: torch.Tensor) -> dict[str, dict[float, tuple[int, float]]]:
    """For each conv weight and width: (about the bytes of its coded codes, the output MSE it
    adds when it alone is quantized)."""
    set_weight_fake_quant(decoder, None)
    reference = decoder(latents).float()
    costs: dict[str, dict[float, tuple[int, float]]] = {}
    for name, weight in decoder.state_dict().items():
        if weight.ndim < 2:
            continue
        costs[name] = {}
        for bits in WIDTHS:
            set_weight_fake_quant(decoder, {name: bits})
            error = torch.mean((decoder(latents).float() - reference) ** 2).item()
            costs[name][bits] = (coded_size(quantize_weight(weight.cpu(), bits)[0]), error)
    set_weight_fake_quant(decoder, None)
    return costs


def _narrower(costs: dict[str, dict[float, tuple[int, float]]], widths: dict[str, float]
              ) -> dict[str, float] | None:
    """``widths`` with the one layer narrowed by a quarter bit that adds the least error per byte
    saved; None when every layer is already at the narrowest width."""
    best, best_ratio = None, float("inf")
    for name, w in widths.items():
        if w == WIDTHS[0]:
            continue
        less = WIDTHS[WIDTHS.index(w) - 1]
        (bytes_now, err_now), (bytes_less, err_less) = costs[name][w], costs[name][less]
        ratio = max(err_less - err_now, 0.0) / max(bytes_now - bytes_less, 1)
        if ratio < best_ratio:
            best, best_ratio = (name, less), ratio
    return None if best is None else {**widths, best[0]: best[1]}


def choose_widths(costs: dict[str, dict[float, tuple[int, float]]], fits: Callable[[dict[str, float]], bool]
                  ) -> dict[str, float]:
    """Start every layer at the widest code and narrow greedily (see _narrower) until
    ``fits(widths)``; the narrowest widths if nothing fits."""
    widths = {name: WIDTHS[-1] for name in costs}
    while not fits(widths) and (narrower := _narrower(costs, widths)) is not None:
        widths = narrower
    return widths


def allocate_weight_bits(decoder: torch.nn.Module, latents: torch.Tensor, budget_bits: float,
                         sent_size: Callable[[dict[str, float]], int]) -> dict[str, float]:
    """Widths for the decoder's weights whose download (``sent_size(widths)`` bytes) fits
    ``budget_bits`` per parameter, losing the least on ``latents``."""
    budget = budget_bits * count_parameters(decoder) / 8
    costs = measure_layers(decoder, latents)
    widest = {name: WIDTHS[-1] for name in costs}
    # The header, scales and biases do not depend on the widths: estimate with the codes alone,
    # then confirm with the real file (and keep narrowing in the rare case the estimate was short).
    overhead = sent_size(widest) - sum(c[WIDTHS[-1]][0] for c in costs.values())
    widths = choose_widths(costs, lambda w: overhead + sum(costs[n][b][0] for n, b in w.items()) <= budget)
    while sent_size(widths) > budget:
        narrower = _narrower(costs, widths)
        if narrower is None:
            log.warning("decoder weights at %g bits still exceed a budget of %g bits per weight",
                        WIDTHS[0], budget_bits)
            break
        widths = narrower
    return widths


# The allocation decodes its frames once per layer and width (about 100 times): 16 frames at
# 320x180 take a few seconds on 2 cores; larger frames get fewer of them, at least 4.
ALLOCATION_PIXELS = 16 * 320 * 180


def allocate_for_run(model: torch.nn.Module, data, device: torch.device, budget: float, distributed: bool
                     ) -> dict[str, float]:
    """Per-layer weight widths within ``budget`` bits per decoder parameter, measured on a spread
    of the training video's frames (``data``, a FrameCache); every rank takes rank 0's choice."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        n = min(16, max(4, ALLOCATION_PIXELS // (model.cfg.width * model.cfg.height)))
        latents = model.encoder(to_tensor(data.stack(spread_indices(len(data), n)), device))
    widths = allocate_weight_bits(model.decoder, latents, budget,
                                  lambda w: len(compress_decoder(int8_state_bytes(model.decoder, w))))
    model.train(was_training)
    widths = broadcast(widths, distributed)
    log.info("decoder weight widths for %g bits/weight: %s", budget, widths)
    return widths

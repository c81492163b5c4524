"""The learning-rate schedule over the budget."""

from __future__ import annotations

import math

from .options import TrainOptions


def lr_at(progress: float, opts: TrainOptions) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio * lr`` at the end of the budget."""
    p = min(max(progress, 0.0), 1.0)
    if p < opts.warmup:
        return opts.lr * max(p / opts.warmup, 0.01)
    t = (p - opts.warmup) / max(1e-9, 1 - opts.warmup)
    floor = opts.lr * opts.min_lr_ratio
    return floor + (opts.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))

"""Recovering a training run whose loss blew up.

A step too large for the landscape can throw this decoder onto the mean frame: the training
PSNR falls from the 20s to about 12 dB and, with the GELUs past their useful range, never
comes back. On cockatoo at 320x180 a 4e-3 peak learning rate did that 2,000 steps in, and the
remaining 28,000 steps of a 217-epoch run trained nothing. The guard keeps a copy of the last
healthy weights and optimizer state; when the smoothed PSNR stays far under its best, it puts
them back and halves the learning rate for the rest of the run.

Quantized latents lower the PSNR on purpose (at 2 bits, by 8 dB on that clip), and so does the
quantization noise before them, and so do the weight codes, so the guard starts over at the
start of every phase after the first (codec/train/phases.py). A collapse takes a hundred steps
or so to fall, and the smoothed PSNR lags it, so a phase can begin in the middle of one; the
phase asks ``collapsing`` first and restores before it starts over, or the collapsed state would
become the new normal (on the test movie that left `huge` at 11 dB for the rest of its run).
"""

from __future__ import annotations

import copy
import logging
from collections import deque

import torch

log = logging.getLogger(__name__)


class CollapseGuard:
    """Watches a smoothed training PSNR; see the module docstring.

    ``drop_db``: how far under its best the smoothed PSNR must fall to count as collapsed
    (the quantization-aware phase costs well under 1 dB; a collapse costs 10 or more).
    ``patience``: for how many steps in a row, so one bad batch is not a collapse.
    ``every``: steps between snapshots, taken only while training is healthy.
    ``lr_scale``: where a resumed run's earlier restores left the learning rate.
    """

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, drop_db: float = 4.0,
                 patience: int = 100, every: int = 500, smoothing: float = 0.99, lr_scale: float = 1.0):
        self.model, self.opt = model, opt
        self.drop_db, self.patience, self.every, self.smoothing = drop_db, patience, every, smoothing
        self.lr_scale = lr_scale
        self.restores = 0
        self._ema: float | None = None
        self._best = -float("inf")
        self._low_steps = 0
        self._recent: deque[float] = deque(maxlen=max(1, patience // 4))
        self._snapshot: tuple[dict, dict, float] | None = None

    def suspicious(self, psnr: float) -> bool:
        """Feed one step's PSNR; True while the smoothed PSNR has been collapsed ``patience`` steps."""
        self._ema = psnr if self._ema is None else self.smoothing * self._ema + (1 - self.smoothing) * psnr
        self._recent.append(psnr)
        self._best = max(self._best, self._ema)
        self._low_steps = self._low_steps + 1 if self._ema < self._best - self.drop_db else 0
        return self._low_steps >= self.patience

    @property
    def healthy(self) -> bool:
        """Fit for a snapshot. The smoothed PSNR alone lags: in a collapse's first steps it still
        looks healthy while the weights are already falling, so a collapse begun also counts."""
        return self._ema is not None and self._ema >= self._best - 1.0 and not self.collapsing()

    def collapsing(self) -> bool:
        """True once a collapse has begun, before it has outlasted the patience: the smoothed
        PSNR, or the mean of the last few steps' (which does not lag), is ``drop_db`` under the best."""
        if self._ema is None:
            return False
        latest = sum(self._recent) / len(self._recent) if self._recent else self._ema
        return min(self._ema, latest) < self._best - self.drop_db

    def maybe_snapshot(self, step: int, healthy: bool) -> None:
        """Copy the weights and optimizer state every ``every`` steps while ``healthy``, and at
        the first healthy step after a start or a rebase, so that a collapse early in a phase
        has a state to go back to."""
        if healthy and (self._snapshot is None or step % self.every == 0):
            self._snapshot = (copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.opt.state_dict()),
                              self._ema)

    def rebase(self) -> None:
        """The objective changed (quantization-aware training began): a lower PSNR from here on is
        no collapse, and weights from before are not the ones to go back to."""
        self._ema, self._best, self._low_steps, self._snapshot = None, -float("inf"), 0, None
        self._recent.clear()

    def restore(self, step: int) -> bool:
        """Put back the last healthy state and halve the learning rate; False if there is none."""
        if self._snapshot is None:
            return False
        weights, opt_state, ema = self._snapshot
        self.model.load_state_dict(weights)
        self.opt.load_state_dict(opt_state)
        self.lr_scale *= 0.5
        self.restores += 1
        self._ema, self._best, self._low_steps = ema, ema, 0
        self._recent.clear()
        log.warning("training collapsed at step %d; restored the weights of %.2f dB and halved the learning "
                    "rate (now %.2gx the schedule)", step, ema, self.lr_scale)
        return True

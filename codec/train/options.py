"""Training options: the only home of the trainer's defaults.

Each field carries its command-line flag and help in its metadata, so ``latentcast train``
is built from this class (``latentcast.commands._common.add_dataclass_options``) and the
Python API takes the same names as keyword arguments. A help text says what a value trades;
measured runs behind the defaults are in docs/experiments.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from ..format.errors import UsageError
from ..format.quantizer import DEFAULT_BITS, check_bits
from ..nn.config import (
    CAPACITIES,
    DEFAULT_WEIGHT_BITS,
    MAX_WEIGHT_BITS,
    MIN_WEIGHT_BITS,
    capacity_of,
    check_weight_bits,
)
from ..video import parse_size
from .capacity import AUTO, AUTO_DECODER_KBPS, AUTO_LARGEST
from .presets import PRESETS, preset_options
from .weight_budget import DEFAULT_WEIGHT_BUDGET, check_weight_budget

# The default batch is 4 frames a step for a run of at least AUTO_BATCH_MIN_BUDGET_S on a video of
# at least AUTO_BATCH_FRAMES frames (a movie), else 2. A batch of 4 runs 1.2-1.5 times the frames a
# second on a CPU (a step's fixed costs are shared) and never collapsed on the test movie, where
# it gained 0.3-0.4 dB in 26 minutes; but it makes fewer updates, and on the 280-frame sample it
# lost 0.9 dB in 2 minutes and 0.4 in 10. Growing the batch from 2 to 4 mid-run lost to both on
# the movie (docs/experiments.md, 2026-12-07).
AUTO_BATCH, AUTO_BATCH_LONG, AUTO_BATCH_FRAMES, AUTO_BATCH_MIN_BUDGET_S = 2, 4, 1000, 1200.0


def option(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None,
           parse: Callable[[str], Any] | None = None, choices: tuple | None = None, group: str | None = None,
           clears: str | None = None, expands: Callable[[Any], dict] | None = None, cli: bool = True) -> Any:
    """A dataclass field with what its command-line flag needs: ``flag`` (default: the name with
    dashes), ``parse`` (default: the type of the default), ``group`` (flags in one group exclude
    each other), ``clears`` (a field this one sets to None when given: --epochs clears --minutes),
    ``expands`` (from this field's value, other fields to set unless given: --preset)."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "parse": parse, "choices": choices, "group": group,
            "clears": clears, "expands": expands, "cli": cli}
    return field(default=default, metadata=meta)


@dataclass
class TrainOptions:
    """How to fit a codec to one video. Budget: ``minutes`` of wall clock, ``seconds_per_second``
    of wall clock per second of video, or ``epochs``."""

    size: tuple[int, int] | None = option(
        None, "train at this frame size (default: the video's own)", metavar="WxH", parse=parse_size)
    preset: str | None = option(
        None, f"a rung of the quality ladder ({' < '.join(PRESETS)}; README, Results): sets --capacity, "
              "--latent-dim and --bits together as the ladder measured them, each still overridable. A higher "
              "rung: more PSNR for a bigger download. Without it, --capacity auto", choices=tuple(PRESETS),
        parse=str, expands=preset_options)
    latent_dim: int | None = option(
        None, "latent values per frame; fewer: fewer bytes a frame and lower quality (default: the rung's, "
              "256 for tiny and 512 for the others)", metavar="N", parse=int)
    capacity: str = option(
        AUTO, f"the decoder's size, a rung of the ladder {' < '.join(CAPACITIES)}: bigger holds more detail but "
              "every byte of it is downloaded before the first frame, so it pays only on longer videos. auto "
              f"takes the largest rung whose decoder costs at most {AUTO_DECODER_KBPS:g} kbit/s over the video's "
              f"length, up to {AUTO_LARGEST}", choices=(AUTO, *CAPACITIES))
    minutes: float | None = option(
        5.0, "wall-clock training budget in minutes; more buys quality with diminishing returns",
        group="budget", parse=float)
    seconds_per_second: float | None = option(
        None, "wall-clock training budget in seconds per second of video, instead of --minutes: a budget "
              "that grows with the content (a 90-minute movie at 20 trains 30 hours)", group="budget",
        parse=float, clears="minutes", metavar="S")
    epochs: int | None = option(
        None, "train for this many passes over the frames instead of --minutes (repeatable runs)",
        group="budget", parse=int, clears="minutes", metavar="N")
    batch_size: int | None = option(
        None, "frames per step; a bigger batch trains on more frames a second but makes fewer updates in the "
              f"budget, which only a long run on many frames can spare (default: {AUTO_BATCH_LONG} for a budget of "
              f"{AUTO_BATCH_MIN_BUDGET_S / 60:g} minutes or more on a video of {AUTO_BATCH_FRAMES} frames or more, "
              f"else {AUTO_BATCH})", metavar="N", parse=int)
    lr: float = option(2e-3, "peak learning rate; too high can collapse training (the guard then halves it)")
    warmup: float = option(
        0.05, "fraction of the budget spent warming the learning rate up; then it decays on a cosine")
    min_lr_ratio: float = option(0.02, "where the cosine decay ends, as a fraction of the peak rate")
    qat_fraction: float = option(
        0.15, "fraction of the budget at the end that freezes the encoder and fine-tunes the decoder on "
              "quantized latents and weights, shipping its weights' average over that phase (0: ship the "
              "float-trained model, which loses more when quantized)", metavar="FRACTION")
    noise_from: float = option(
        0.1, "fraction of the budget after which latents reach the decoder with quantization noise, so the "
             "encoder learns a code that survives rounding to --bits (1: never)", metavar="FRACTION")
    weight_qat_from: float = option(
        0.5, "fraction of the budget after which the decoder trains through its shipped weight codes, the "
             "widths chosen then (1: only in the QAT phase). Earlier gives narrow codes, as a small "
             "--weight-budget makes, more steps to fit, and the float weights fewer", metavar="FRACTION")
    bits: int = option(
        DEFAULT_BITS, "latent bit width the model is fine-tuned for, and the width encode and ingest use with "
                      "it: the rate knob. Each bit up costs more latent bytes a frame for a higher PSNR, with "
                      "returns that shrink past 3-4 bits")
    weight_bits: int | None = option(
        None, f"one code width ({MIN_WEIGHT_BITS}-{MAX_WEIGHT_BITS}) for every decoder layer instead of "
              "--weight-budget: simpler, but spends bytes where they buy least", group="weights", parse=int)
    weight_budget: float = option(
        DEFAULT_WEIGHT_BUDGET, "size of the decoder clients download, in bits per weight as coded for the wire. Each "
                               "layer gets the code width (2-8 bits, in quarters) that loses least within it. "
                               "Smaller: a smaller download for a little PSNR", group="weights", metavar="BITS")
    weight_rate_slope: float = option(
        0.0, "while the decoder trains through its weight codes, pull the codes that buy least toward zero, "
             "which the entropy coder makes cheap, at this many dB of PSNR per doubling of the total bytes: "
             "higher gives a smaller download for some PSNR (0: off)", metavar="DB")
    ms_ssim_weight: float = option(
        0.0, "weight of (1 - MS-SSIM) in the loss, mixed with MSE; higher favours structure over PSNR",
        flag="--ms-ssim", metavar="W")
    grad_clip: float = option(1.0, "gradient norm clip; keeps an early bad step from wrecking the weights")
    seed: int = option(0, "random seed: the same seed, options and threads give the same model")
    checkpoint_seconds: float = option(
        60.0, "checkpoint interval in seconds; shorter loses less to a crash and costs a little time",
        flag="--checkpoint-every", metavar="SECONDS")
    max_frames: int | None = option(None, "use only the first N frames of the video", parse=int, metavar="N")
    device: str | None = option(
        None, "cpu, cuda, cuda:1 or mps (default: CUDA if present, else MPS, else CPU)", parse=str)
    threads: int | None = option(None, "CPU threads for torch (default: torch's choice)", parse=int, metavar="N")
    precision: str = option(
        "auto", "arithmetic for training steps: bf16 autocast runs more steps where the hardware has bf16 "
                "units and is slow where it is emulated; auto picks bf16 only where it is native. Evaluation "
                "and the shipped model are fp32 either way", choices=("auto", "fp32", "bf16"))
    progress: bool = option(True, "show a progress bar", cli=False)
    arch: dict | None = option(None, "CodecConfig overrides (stem_channels, decoder_channels, ...)", cli=False)
    channels_last: bool = option(True, "run steps channels-last (faster with oneDNN and cuDNN)", cli=False)

    def validate(self) -> None:
        """Raise UsageError for values that cannot train."""
        check_bits(self.bits)
        if self.preset is not None:
            preset_options(self.preset)
        if self.capacity != AUTO:
            capacity_of(self.capacity)
        if self.weight_bits is not None:
            check_weight_bits(self.weight_bits)
        check_weight_budget(self.weight_budget)
        if self.latent_dim is not None and self.latent_dim <= 0:
            raise UsageError(f"--latent-dim must be positive, got {self.latent_dim}")
        if not self.weight_rate_slope >= 0:
            raise UsageError(f"--weight-rate-slope must be 0 or more, got {self.weight_rate_slope}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {self.batch_size}")
        budgets = [b for b in (self.minutes, self.seconds_per_second, self.epochs) if b is not None]
        if len(budgets) != 1:
            raise UsageError("give exactly one of --minutes, --seconds-per-second and --epochs")
        if budgets[0] <= 0:
            raise UsageError("the training budget must be positive")
        for name in ("noise_from", "qat_fraction", "warmup", "weight_qat_from"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(self, name)}")

    def batch_for(self, frames: int, budget_s: float | None) -> int:
        """Frames per step for a run on ``frames`` frames with a wall-clock budget of ``budget_s``
        seconds (None for a budget in epochs): --batch-size, or the default."""
        if self.batch_size is not None:
            return self.batch_size
        long_run = budget_s is not None and budget_s >= AUTO_BATCH_MIN_BUDGET_S
        return AUTO_BATCH_LONG if long_run and frames >= AUTO_BATCH_FRAMES else AUTO_BATCH

    @property
    def shipped_weight_bits(self) -> int:
        """The weight width a config records: --weight-bits, or the default under a budget."""
        return self.weight_bits or DEFAULT_WEIGHT_BITS


def with_cleared(cls: type, given: dict) -> dict:
    """``given`` keyword options, with each field that a given field ``clears`` set to None
    unless it was given too (a budget in epochs replaces the default minutes), and, where they
    were not given, the fields that a given field ``expands`` to (--preset)."""
    out = dict(given)
    for f in dataclasses.fields(cls):
        cleared, expands = f.metadata.get("clears"), f.metadata.get("expands")
        if f.name in given and cleared and cleared not in given:
            out[cleared] = None
        if given.get(f.name) is not None and expands:
            for name, value in expands(given[f.name]).items():
                out.setdefault(name, value)
    return out

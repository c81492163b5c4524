"""The training schedule as data: which phases a run goes through, and what each one changes.

    progress 0 ........ noise_from ........ weight_qat_from ........ 1 - qat_fraction ........ 1
    | float             | noise              | weights               | qat                      |
    | latents as they   | + uniform noise    | noise, and the        | quantized latents        |
    | are; encoder      |   one quantizer    | decoder's weights     | (straight-through),      |
    | trains            |   step wide;       | seen through their    | encoder frozen, weights  |
    |                   |   encoder trains   | shipped codes         | through their codes and  |
    |                   |                    |                       | averaged                 |

At weight_qat_from = 1 the weights phase never runs and the QAT phase alone sees the weight
codes; it never starts before noise_from.

The phase at a point of the budget is the last one in ``PHASES`` whose start it has passed, so
a phase whose start comes after a later phase's never runs (noise_from >= 1 - qat_fraction).
Entering a phase runs its ``on_entry`` actions once (again after a resume, which enters the
phase it resumes in); ``before_step`` actions run before each of its steps. The loop reads
only these fields: no code anywhere asks a phase for its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch.optim.swa_utils import AveragedModel, get_swa_multi_avg_fn

from ..nn.model import set_weight_fake_quant
from ..nn.weights import shipped_widths
from .distributed import agree, shared_ranges
from .latent_noise import add_quantization_noise, fake_quantize
from .options import TrainOptions
from .weight_budget import allocate_for_run

if TYPE_CHECKING:
    from .loop import TrainingRun

# The noise's ranges come from this many frames' worth of 320x180 pixels spread over the video,
# measured again after this many steps: they drift slowly as the encoder trains, and measuring
# over every frame at every step would cost more than the steps on a long movie. The final
# ranges, which the QAT phase quantizes to, come from more. Counted in pixels because the
# encoder's cost is: at 1280x720 on one thread 256 frames took 8-11 s a refresh and the final
# 280 about 26 s, a quarter of a 4-minute budget, which left the QAT phase 64 of its 270 steps.
NOISE_RANGE_FRAMES = 256
FINAL_RANGE_FRAMES = 2000
RANGE_FRAME_PIXELS = 320 * 180
MIN_RANGE_FRAMES = 32
NOISE_REFRESH_STEPS = 500


def range_frames(frames_at_320x180: int, width: int, height: int) -> int:
    """How many frames a range measure reads at this frame size: as many pixels as
    ``frames_at_320x180`` frames of 320x180 for larger frames (at least MIN_RANGE_FRAMES), and
    that many frames for smaller ones, where they cost little."""
    scaled = frames_at_320x180 * RANGE_FRAME_PIXELS // max(1, width * height)
    return max(MIN_RANGE_FRAMES, min(frames_at_320x180, scaled))

Action = Callable[["TrainingRun"], None]


@dataclass(frozen=True)
class Phase:
    """One stretch of the budget; see the module docstring."""

    name: str  # for people: the progress bar and train_log.jsonl
    start: Callable[[TrainOptions], float]  # where it begins, as a fraction of the budget
    # What the decoder gets instead of the encoder's latents (None: the latents themselves).
    latents: Callable[["TrainingRun", torch.Tensor], torch.Tensor] | None
    freeze_encoder: bool
    on_entry: tuple[Action, ...] = ()
    before_step: tuple[Action, ...] = ()


# -- what phases do ----------------------------------------------------------------------------

def restart_collapse_guard(run: "TrainingRun") -> None:
    """The objective changed, and lowers the PSNR on purpose: at 1 bit the noise costs more than
    the guard's margin, which without this took every such run for a collapse, over and over.
    A collapse already under way is undone first, or the guard would start over from it."""
    (collapsing,) = agree([run.guard.collapsing()], run.distributed)
    if collapsing:
        recover_from_collapse(run)
    run.guard.rebase()


def recover_from_collapse(run: "TrainingRun") -> None:
    """Put back the last healthy weights (the guard halves the rate)."""
    if run.guard.restore(run.step) and run.average is not None:
        # Steps of the collapse went into the average: begin it again from the restored weights.
        run.average = weight_average(run.model.decoder)
    run.collapsed = False
    run.noise_due = run.step  # the restored encoder's latents have other ranges


def refresh_noise_ranges(run: "TrainingRun") -> None:
    """Measure the ranges that size the noise when they are due (and after a collapse restore)."""
    if run.step >= run.noise_due:
        run.noise_ranges = shared_ranges(run.model, run.data, run.device, run.opts.bits, run.distributed,
                                         range_frames(NOISE_RANGE_FRAMES, run.cfg.width, run.cfg.height))
        run.noise_due = run.step + NOISE_REFRESH_STEPS


def choose_weight_widths(run: "TrainingRun") -> None:
    """Under a budget, pick the decoder's per-layer code widths once (a resumed run keeps its own)."""
    if run.opts.weight_bits is None and not run.cfg.weight_layer_bits:
        run.cfg.weight_layer_bits = allocate_for_run(run.model, run.data, run.device, run.opts.weight_budget,
                                                     run.distributed)


def fake_quantize_weights(run: "TrainingRun") -> None:
    """From here the decoder computes with its weights as they will ship."""
    set_weight_fake_quant(run.model.decoder, shipped_widths(run.model.decoder))


def measure_final_ranges(run: "TrainingRun") -> None:
    """The encoder is frozen from here, so its latents' ranges are final: measured once."""
    run.qat_ranges = shared_ranges(run.model, run.data, run.device, run.opts.bits, run.distributed,
                                   range_frames(FINAL_RANGE_FRAMES, run.cfg.width, run.cfg.height))


def start_weight_average(run: "TrainingRun") -> None:
    """The decoder that ships is the uniform average of its weights over the phase (SWA)."""
    run.average = weight_average(run.model.decoder)
    if run.resumed_average:
        run.average.load_state_dict(run.resumed_average)


def weight_average(decoder: torch.nn.Module) -> AveragedModel:
    """A running uniform average of the decoder's weights. The one-kernel update is asked for by
    name: left to choose, torch uses it on GPUs only, and its per-tensor loop was slow on the CPU."""
    return AveragedModel(decoder, multi_avg_fn=get_swa_multi_avg_fn(), use_buffers=False)


def noisy_latents(run: "TrainingRun", z: torch.Tensor) -> torch.Tensor:
    return add_quantization_noise(z, *run.noise_ranges, run.opts.bits)


def quantized_latents(run: "TrainingRun", z: torch.Tensor) -> torch.Tensor:
    return fake_quantize(z, *run.qat_ranges, run.opts.bits)


# -- the schedule ------------------------------------------------------------------------------

PHASES: tuple[Phase, ...] = (
    Phase("float", start=lambda o: 0.0, latents=None, freeze_encoder=False),
    Phase("noise", start=lambda o: o.noise_from, latents=noisy_latents, freeze_encoder=False,
          on_entry=(restart_collapse_guard,), before_step=(refresh_noise_ranges,)),
    # Narrow weight codes need more steps than the QAT phase gives to settle (docs/experiments.md).
    Phase("weights", start=lambda o: max(o.noise_from, o.weight_qat_from), latents=noisy_latents,
          freeze_encoder=False, on_entry=(restart_collapse_guard, choose_weight_widths, fake_quantize_weights),
          before_step=(refresh_noise_ranges,)),
    Phase("qat", start=lambda o: 1 - o.qat_fraction, latents=quantized_latents, freeze_encoder=True,
          on_entry=(restart_collapse_guard, choose_weight_widths, fake_quantize_weights, measure_final_ranges,
                    start_weight_average)),
)


def phase_at(progress: float, opts: TrainOptions, phases: tuple[Phase, ...] = PHASES) -> Phase:
    """The phase that runs at ``progress`` (0..1) of the budget."""
    current = phases[0]
    for phase in phases:
        if progress >= phase.start(opts):
            current = phase
    return current

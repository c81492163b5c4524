"""Fitting the autoencoder to one video, top to bottom:

1. ``start_run``: decode the video once at training size into a frame cache (data.py), plan
   and build the model, restore a checkpoint when resuming;
2. ``run_budget``: Adam on MSE (optionally mixed with MS-SSIM), the learning rate warmed up
   then cosine-decayed over the budget (schedule.py), through the phases of phases.py: float,
   latent noise, then quantization-aware fine-tuning of the decoder with the encoder frozen.
   Steps run channels-last, in bf16 autocast where the hardware has bf16 units, and on the
   frame as the decoder head's pixel blocks (Autoencoder.to_blocks), so no step works at full
   resolution and a time budget buys more steps;
3. ``finish``: the decoder averaged over the QAT phase, evaluated as clients will hold it, and
   written as a model directory.

Should the loss blow up (PSNR falling onto the mean frame), the collapse guard puts back the
last healthy weights and halves the learning rate. Multi-GPU and multi-node runs go through
``torchrun``: DDP is detected from ``RANK``, a DistributedSampler shards the frames, and rank 0
alone logs and saves.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Iterator

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DistributedSampler, RandomSampler

from .. import video
from ..format.decoder_file import compress_decoder
from ..format.quantizer import Quantizer
from ..nn.config import CodecConfig
from ..nn.model import Autoencoder, build_model, count_parameters, macs_per_pixel, set_weight_fake_quant
from ..nn.ms_ssim import ms_ssim, ms_ssim_scales
from ..nn.weights import int8_state_bytes, save_model, shipped_widths
from ..progress import progress_bar
from ..quality import mse_to_psnr
from .capacity import AUTO, auto_capacity
from .checkpoint import load_checkpoint, save_checkpoint
from .collapse_guard import CollapseGuard
from .data import CACHE_DIR, FrameCache, build_cache
from .device import hardware_name, pick_autocast, pick_device
from .distributed import agree, forward_latents, rank_and_world
from .evaluate import as_shipped, bf16_loss, evaluate, latent_ranges
from .options import AUTO_BATCH, TrainOptions
from .phases import Phase, choose_weight_widths, phase_at, recover_from_collapse
from .presets import rung_latent_dim
from .preview import PREVIEW, write_preview
from .schedule import lr_at
from .weight_rate import WeightRatePull, download_bits

TRAIN_LOG = "train_log.jsonl"
LOG_EVERY = 25  # steps between train_log.jsonl records


@dataclass
class TrainingRun:
    """Everything one run carries from step to step; phases act on it (phases.py)."""

    opts: TrainOptions
    source: str
    model_dir: Path
    cfg: CodecConfig
    data: FrameCache
    device: torch.device
    model: Autoencoder
    net: torch.nn.Module  # the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    guard: CollapseGuard
    rank: int = 0
    world: int = 1
    batch_size: int = AUTO_BATCH  # frames per step over all ranks: --batch-size, or its default for this run
    layout: torch.memory_format = torch.channels_last
    autocast_dtype: torch.dtype | None = None
    pixel_mask: torch.Tensor | None = None  # 1 on the frame's pixels in to_blocks' layout, 0 on padding
    step: int = 0
    epoch: int = 0
    elapsed_before: float = 0.0  # seconds trained before a resume
    history: list[dict] = field(default_factory=list)
    resumed_average: dict = field(default_factory=dict)
    phase: Phase | None = None
    qat_ranges: tuple[torch.Tensor, torch.Tensor] | None = None
    noise_ranges: tuple[torch.Tensor, torch.Tensor] | None = None
    noise_due: int = 0  # the step at which the noise ranges are measured next
    average: AveragedModel | None = None  # the decoder's weights averaged over the QAT phase
    collapsed: bool = False
    rate_pull: WeightRatePull | None = None  # --weight-rate-slope's term, when on
    started: float = field(default_factory=time.monotonic)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main_rank(self) -> bool:
        return self.rank == 0

    @property
    def per_rank_batch(self) -> int:
        return max(1, self.batch_size // self.world)

    @property
    def total_steps(self) -> int | None:
        per_epoch = math.ceil(len(self.data) / (self.per_rank_batch * self.world))
        return self.opts.epochs * per_epoch if self.opts.epochs else None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def budget_s(self) -> float | None:
        """The wall-clock budget in seconds (None for a budget in epochs)."""
        return wall_clock_budget(self.opts, len(self.data), self.cfg.fps)

    def progress(self) -> float:
        """How far through the budget the run is, 0..1 (past 1: done)."""
        total = self.total_steps
        return self.step / total if total else self.elapsed / self.budget_s

    def state(self) -> dict:
        """What a checkpoint records beside the tensors: the widths, so a resumed QAT phase keeps them,
        and the batch, which a resumed run keeps."""
        return {"step": self.step, "epoch": self.epoch, "elapsed": self.elapsed, "batch_size": self.batch_size,
                "history": self.history[-2000:],
                "weight_layer_bits": self.cfg.weight_layer_bits, "lr_scale": self.guard.lr_scale}

    def checkpoint(self, **extra) -> None:
        save_checkpoint(self.model_dir, self.model, self.opt, {**self.state(), **extra},
                        None if extra.get("finished") else self.average)


def train(source: str, model_dir: str | os.PathLike, opts: TrainOptions, resume: bool = False) -> dict:
    """Fit a codec to ``source`` and write ``model_dir``; returns the final summary (rank 0)."""
    opts.validate()
    run = start_run(source, Path(model_dir), opts, resume)
    try:
        run_budget(run, resume)
    except KeyboardInterrupt:
        if run.main_rank:
            run.checkpoint()
        raise
    return finish(run)


def start_run(source: str, model_dir: Path, opts: TrainOptions, resume: bool) -> TrainingRun:
    """The frame cache, the model and its optimizer, and a checkpoint's state when resuming."""
    rank, world = rank_and_world()
    device = pick_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    info = video.probe(source)
    size = opts.size or (info.width, info.height)
    data, meta = _shared_cache(source, size, model_dir, opts, rank, world)
    fps = meta["fps"][0] / meta["fps"][1]
    # From the frames trained on, so a resumed run plans the same decoder
    capacity = opts.capacity if opts.capacity != AUTO else auto_capacity(
        size[0], size[1], opts.latent_dim or CodecConfig.latent_dim, len(data) / fps,
        opts.weight_bits or opts.weight_budget)
    latent_dim = opts.latent_dim or rung_latent_dim(capacity)
    cfg = CodecConfig.plan(size[0], size[1], latent_dim, capacity=capacity,
                           **{"weight_bits": opts.shipped_weight_bits, **(opts.arch or {})})
    cfg.fps = fps
    # arch overrides (the Python API's) that set widths make a decoder off the ladder
    custom = bool({"stem_channels", "decoder_channels"} & set(opts.arch or {}))
    cfg.trained = {"capacity": "custom" if custom else capacity}

    torch.manual_seed(opts.seed)
    layout = torch.channels_last if opts.channels_last else torch.contiguous_format
    model = build_model(cfg).to(device).to(memory_format=layout)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    # The fused step is one kernel per parameter group, where the per-tensor loop was a fifth of a
    # CPU step for this small network. One group: the QAT phase freezes the encoder by leaving its
    # gradients empty, which Adam skips (a group of its own at a zero rate still stepped its moments).
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr, fused=device.type in ("cpu", "cuda"))
    fresh = {"step": 0, "epoch": 0, "elapsed": 0.0}
    state, resumed_average = load_checkpoint(model_dir, model, opt) if resume else (fresh, {})
    if resume:
        # The widths a budget run chose (once its QAT phase began); none when one width was asked for.
        cfg.weight_layer_bits = state.get("weight_layer_bits", {}) if opts.weight_bits is None else {}
    run = TrainingRun(
        opts, source, model_dir, cfg, data, device, model, net, opt,
        # A run that recovered from a collapse keeps its lower rate.
        CollapseGuard(model, opt, lr_scale=float(state.get("lr_scale", 1.0))),
        rank=rank, world=world, batch_size=_batch_size(opts, len(data), fps, state, resume), layout=layout,
        autocast_dtype=pick_autocast(opts.precision, device),
        pixel_mask=model.block_mask(device).contiguous(memory_format=layout) if model.trains_in_blocks else None,
        step=state["step"], epoch=state["epoch"], elapsed_before=state["elapsed"],
        history=state.get("history", []), resumed_average=resumed_average)
    run.started = time.monotonic() - run.elapsed_before
    if opts.weight_rate_slope:
        run.rate_pull = WeightRatePull(opts.weight_rate_slope, download_bits(
            model.decoder, opts.weight_bits or opts.weight_budget, len(data), cfg.latent_dim, opts.bits))
    return run


def wall_clock_budget(opts: TrainOptions, frames: int, fps: float) -> float | None:
    """The budget in seconds (None for a budget in epochs): --minutes, or --seconds-per-second
    times the video's length as cached."""
    if opts.minutes is not None:
        return opts.minutes * 60
    if opts.seconds_per_second is not None:
        return opts.seconds_per_second * frames / fps
    return None


def _batch_size(opts: TrainOptions, frames: int, fps: float, state: dict, resume: bool) -> int:
    """--batch-size; else a resumed run keeps its batch (checkpoints from before the default
    depended on the run were all at 2), and a new run takes the default for its video and budget."""
    if resume and opts.batch_size is None:
        return int(state.get("batch_size", AUTO_BATCH))
    return opts.batch_for(frames, wall_clock_budget(opts, frames, fps))


def _shared_cache(source: str, size: tuple[int, int], model_dir: Path, opts: TrainOptions, rank: int, world: int
                  ) -> tuple[FrameCache, dict]:
    """Rank 0 builds the frame cache; the others wait for it, then read the same file."""
    if rank == 0:
        cache = build_cache(source, size, model_dir / CACHE_DIR, opts.max_frames, opts.progress)
    if world > 1:
        dist.barrier()
    if rank != 0:
        cache = build_cache(source, size, model_dir / CACHE_DIR, opts.max_frames, False)
    return cache


def run_budget(run: TrainingRun, resume: bool) -> None:
    """Step until the budget is spent; see the module docstring."""
    with StepReporter(run, resume) as report:
        for frames in epochs_of_batches(run):
            progress = run.progress()
            # Stop, collapsed, unhealthy: agreed across ranks before anyone acts on them.
            stop, collapsed, unhealthy = agree([progress >= 1, run.collapsed, not run.guard.healthy],
                                               run.distributed)
            if stop:
                return
            if collapsed:
                recover_from_collapse(run)
            run.guard.maybe_snapshot(run.step, healthy=not unhealthy)
            enter_phase(run, phase_at(progress, run.opts))
            set_learning_rate(run, progress)
            mse = train_step(run, frames)
            run.step += 1
            psnr = mse_to_psnr(mse, 1.0)
            run.collapsed = run.guard.suspicious(psnr)
            report.after_step(psnr)


def epochs_of_batches(run: TrainingRun) -> Iterator[torch.Tensor]:
    """uint8 batches (B, H, W, 3), epoch after epoch, in a seeded order per epoch. Batches are
    read straight from the cache: a DataLoader's fetch-and-collate cost more than a step of two
    frames needs."""
    data = run.data
    sampler = (DistributedSampler(data, num_replicas=run.world, rank=run.rank, shuffle=True, seed=run.opts.seed)
               if run.distributed else None)
    while True:
        if sampler is not None:
            sampler.set_epoch(run.epoch)
        gen = torch.Generator().manual_seed(run.opts.seed * 1000003 + run.epoch)
        order = list(sampler or RandomSampler(data, generator=gen))
        for first in range(0, len(order), run.per_rank_batch):
            yield torch.from_numpy(data.stack(order[first : first + run.per_rank_batch]))
        run.epoch += 1


def enter_phase(run: TrainingRun, phase: Phase) -> None:
    """Run a phase's entry actions when it begins, and its per-step actions every step."""
    if phase is not run.phase:
        run.phase = phase
        for action in phase.on_entry:
            action(run)
    for action in phase.before_step:
        action(run)


def set_learning_rate(run: TrainingRun, progress: float) -> None:
    for g in run.opt.param_groups:
        g["lr"] = lr_at(progress, run.opts) * run.guard.lr_scale


def train_step(run: TrainingRun, frames: torch.Tensor) -> float:
    """Forward, backward and update on one batch; returns the batch's MSE (0..1 scale)."""
    model, phase, blocks = run.model, run.phase, run.model.trains_in_blocks
    frames = frames.to(run.device)
    if blocks:
        x = model.to_blocks(frames).contiguous(memory_format=run.layout)
    else:
        x = frames.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=run.layout)
    with torch.autocast(run.device.type, dtype=run.autocast_dtype) if run.autocast_dtype else nullcontext():
        if phase.latents is None:
            y = run.net(x, blocks)
        else:
            y = forward_latents(run.net, model, x, blocks, run.distributed, frozen_encoder=phase.freeze_encoder,
                                latent_fn=partial(phase.latents, run))
    loss, mse = reconstruction_loss(run, y.float(), x, len(frames))
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.rate_pull is not None:
        run.rate_pull.add_gradient(model.decoder, mse, run.distributed)
    if phase.freeze_encoder and run.distributed:  # DDP gave the frozen encoder gradients (forward_latents)
        for p in model.encoder.parameters():
            p.grad = None
    # Clipping keeps an early bad step from throwing the weights out of the range they train in.
    torch.nn.utils.clip_grad_norm_(model.parameters(), run.opts.grad_clip, foreach=True)
    run.opt.step()
    if run.average is not None:
        run.average.update_parameters(model.decoder)
    return mse.item()


def reconstruction_loss(run: TrainingRun, y: torch.Tensor, x: torch.Tensor, batch: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, MSE) of output ``y`` against target ``x``. In blocks the MSE is the mean over the
    frame's pixels, leaving out the canvas padding."""
    model, opts = run.model, run.opts
    if model.trains_in_blocks:
        mse = ((y - x) ** 2 * run.pixel_mask).sum() / (batch * 3 * run.cfg.height * run.cfg.width)
    else:
        mse = torch.mean((y - x) ** 2)
    if opts.ms_ssim_weight <= 0 or ms_ssim_scales(run.cfg.height, run.cfg.width) == 0:
        return mse, mse
    fy, fx = (model.from_blocks(y), model.from_blocks(x)) if model.trains_in_blocks else (y, x)
    return (1 - opts.ms_ssim_weight) * mse + opts.ms_ssim_weight * (1 - ms_ssim(fy, fx).mean()), mse


class StepReporter:
    """The progress bar, train_log.jsonl every LOG_EVERY steps, and timed checkpoints (rank 0)."""

    BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"

    def __init__(self, run: TrainingRun, resume: bool):
        self.run = run
        total = run.total_steps
        self.budget_s = None if total else int(run.budget_s)
        self.bar = progress_bar(run.opts.progress and run.main_rank, total=total or self.budget_s, leave=True,
                                unit="step" if total else "s", desc="training", bar_format=self.BAR)
        self.shown = run.step if total else int(run.elapsed_before)
        self.bar.update(self.shown)
        self.psnr_ema: float | None = None
        self.last_checkpoint = time.monotonic()
        # A fresh run starts a fresh log; a resumed one continues it.
        self.log: IO | None = open(run.model_dir / TRAIN_LOG, "a" if resume else "w") if run.main_rank else None

    def __enter__(self) -> "StepReporter":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
        if self.log:
            self.log.close()

    def after_step(self, psnr: float) -> None:
        run = self.run
        self.psnr_ema = psnr if self.psnr_ema is None else 0.9 * self.psnr_ema + 0.1 * psnr
        if not run.main_rank:
            return
        elapsed = run.elapsed
        done = run.step if self.budget_s is None else min(int(elapsed), self.budget_s)
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done
        lr = run.opt.param_groups[0]["lr"]
        self.bar.set_postfix_str(f"PSNR {self.psnr_ema:.2f} dB lr {lr:.1e} {run.phase.name}", refresh=False)
        if run.step % LOG_EVERY == 0:
            rec = {"step": run.step, "epoch": run.epoch, "elapsed_s": round(elapsed, 2), "lr": lr,
                   "train_psnr": round(self.psnr_ema, 3), "phase": run.phase.name}
            self.log.write(json.dumps(rec) + "\n")
            run.history.append(rec)
        if time.monotonic() - self.last_checkpoint >= run.opts.checkpoint_seconds:
            run.checkpoint()
            self.last_checkpoint = time.monotonic()


def finish(run: TrainingRun) -> dict:
    """Ship the averaged decoder: evaluate it as clients will hold it and write the model dir."""
    model = run.model
    set_weight_fake_quant(model.decoder, None)
    averaged_steps = int(run.average.n_averaged) if run.average is not None else 0
    if averaged_steps:
        model.decoder.load_state_dict(run.average.module.state_dict())
    choose_weight_widths(run)  # does something only when no QAT phase ran (--qat-fraction 0)
    summary: dict = {}
    if run.main_rank:
        summary = _evaluate_and_save(run, averaged_steps)
    if run.distributed:
        dist.barrier()
    return summary


def _evaluate_and_save(run: TrainingRun, averaged_steps: int) -> dict:
    model, opts = run.model, run.opts
    trained_s = run.elapsed  # what follows measures the model; at 1080p on one thread it takes minutes
    model.eval()
    widths = shipped_widths(model.decoder)
    shipped_file = int8_state_bytes(model.decoder, widths)
    sent = len(compress_decoder(shipped_file))
    params = count_parameters(model.decoder)
    shipped = as_shipped(model.decoder, shipped_file)
    psnr_float = evaluate(model, run.data, run.device, None, shipped)
    # The QAT phase measured the ranges on the encoder it then froze: they are final. Without
    # that phase (--qat-fraction 0) they are measured here, once for both figures below.
    ranges = run.qat_ranges or latent_ranges(model, run.data, run.device, opts.bits)
    psnr_q = evaluate(model, run.data, run.device, opts.bits, shipped, ranges)
    # What the torch-bf16 runtime costs this model, on its own frames: auto takes that runtime
    # only within codec.runtime.backends.AUTO_MAX_LOSS_DB of this figure.
    loss = bf16_loss(model, run.data, run.device, opts.bits, shipped, ranges) \
        if run.device.type in ("cpu", "cuda") else None
    summary = {
        "source": os.path.basename(run.source), "width": run.cfg.width, "height": run.cfg.height,
        "frames": len(run.data), "steps": run.step, "batch_size": run.batch_size, "epochs": run.epoch,
        "seconds": round(trained_s, 1),
        "evaluation_seconds": round(run.elapsed - trained_s, 1),
        "psnr_float": round(psnr_float, 3), "psnr_quantized": round(psnr_q, 3), "qat_bits": opts.bits,
        "bf16_loss_db": None if loss is None else round(loss, 4),
        "hardware": hardware_name(run.device), "precision": "bf16" if run.autocast_dtype else "fp32",
        "collapse_restores": run.guard.restores, "lr_scale": run.guard.lr_scale, "averaged_steps": averaged_steps,
        "capacity": run.cfg.trained.get("capacity"),
        "weight_widths": widths, "decoder_bytes_sent": sent, "decoder_params": params,
        "decoder_bits_per_weight": round(8 * sent / params, 3),
        "decoder_macs_per_pixel": round(macs_per_pixel(model.decoder)),
        "options": {k: v for k, v in asdict(opts).items() if k not in ("progress",)},
    }
    quantizer = None if run.qat_ranges is None else Quantizer(opts.bits, *(r.cpu().numpy() for r in run.qat_ranges))
    write_preview(run.model_dir / PREVIEW, model, shipped, run.data, quantizer, run.device)
    model.to("cpu")
    save_model(model, run.model_dir, extra=summary)
    with open(run.model_dir / TRAIN_LOG, "a") as log:
        log.write(json.dumps({"final": summary}) + "\n")
    run.checkpoint(finished=True)
    return summary

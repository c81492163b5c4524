"""Fitting the autoencoder to one video.

The story, top to bottom:

1. decode the video once at training size into a uint8 file cache, read a batch at a time
   (resident memory does not grow with the video);
2. fit with Adam on MSE (optionally mixed with MS-SSIM), learning rate warmed up then
   cosine-decayed over the budget, which is either wall-clock minutes or epochs. From
   ``--noise-from`` on, the latents pass the decoder with uniform noise one quantizer step
   wide, so the encoder learns a code that survives rounding to ``--bits``. Steps run
   channels-last, in bf16 autocast where the hardware has bf16 units (``--precision``), and
   on the frame as the decoder head's pixel blocks (Autoencoder.to_blocks), so no step works
   at full resolution: a time budget buys more steps that way. The weights and their
   evaluation stay fp32;
3. for the last part of the budget (the QAT phase), freeze the encoder and fine-tune the
   decoder on the latents and weights as they will ship: both through fake quantization at
   their shipped bit widths (straight-through). The decoder that ships is the uniform average
   of its weights over that phase (SWA), not the last step's;
4. checkpoint every interval (``--resume`` continues from it) and write the model dir.

Should the loss blow up (PSNR falling onto the mean frame), the collapse guard puts back the
last healthy weights and halves the learning rate (see collapse_guard).

Multi-GPU/multi-node runs go through ``torchrun``: DDP is detected from ``RANK``, a
DistributedSampler shards the frames, and rank 0 alone logs and saves.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load as st_load
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save
from torch.optim.swa_utils import AveragedModel, get_swa_multi_avg_fn
from torch.utils.data import DistributedSampler, RandomSampler

from . import video
from .atomic import atomic_write, write_bytes_atomic, write_text_atomic
from .collapse_guard import CollapseGuard
from .errors import ModelError, UsageError
from .metrics import PSNRMeter, ms_ssim, ms_ssim_scales, mse_to_psnr, to_tensor, to_uint8
from .progress import progress_bar
from .model import Autoencoder, CodecConfig, build_model, count_parameters, macs_per_pixel, set_weight_fake_quant
from .quantize import (DEFAULT_BITS, DEFAULT_WEIGHT_BITS, Quantizer, add_quantization_noise, check_bits,
                       check_weight_bits, fake_quantize, latent_range, spread_indices)
from .weight_budget import DEFAULT_WEIGHT_BUDGET, allocate_weight_bits, check_weight_budget
from .weights import compress_decoder, int8_state_bytes, save_model, shipped_widths

log = logging.getLogger(__name__)

CACHE_DIR = "cache"
CHECKPOINT_DIR = "checkpoint"
TRAIN_LOG = "train_log.jsonl"
# The noise's ranges come from this many frames spread over the video, measured again after
# this many steps. At 320x180, 10-minute runs with the noise made as many steps as without it.
NOISE_RANGE_FRAMES = 256
NOISE_REFRESH_STEPS = 500


@dataclass
class TrainOptions:
    size: tuple[int, int] | None = None
    latent_dim: int = 512
    minutes: float | None = 5.0
    epochs: int | None = None
    batch_size: int = 2
    lr: float = 2e-3
    warmup: float = 0.05  # fraction of the budget
    min_lr_ratio: float = 0.02
    qat_fraction: float = 0.15
    noise_from: float = 0.1  # fraction of the budget after which latents train with quantization noise
    bits: int = DEFAULT_BITS
    weight_bits: int | None = None  # one width for every decoder layer, instead of the budget
    weight_budget: float = DEFAULT_WEIGHT_BUDGET  # bits per decoder parameter in the download
    ms_ssim_weight: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_seconds: float = 60.0
    max_frames: int | None = None
    device: str | None = None
    threads: int | None = None
    progress: bool = True
    arch: dict | None = None  # CodecConfig overrides (stem_channels, decoder_channels, ...)
    precision: str = "auto"  # "fp32", "bf16" (autocast), or "auto": bf16 where the CPU has it natively
    channels_last: bool = True


def pick_device(name: str | None = None) -> torch.device:
    """CUDA when present, else Apple MPS, else CPU; ``name`` forces one."""
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise UsageError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        try:  # oneDNN's own check (AVX512-BF16 or AMX); a private op, so its absence means fp32
            native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            native = False
        return torch.bfloat16 if native else None
    return None


# -- the frame cache ---------------------------------------------------------------------------

class FrameCache:
    """A video decoded once at training size into ``frames.u8`` (N*H*W*3 bytes).

    Frames are read with ``pread``, not memory-mapped: every mapped page a random-order epoch
    touches counts toward the trainer's resident memory, which then grows with the video
    (5.3 GB for 30 minutes at 320x180). Read this way, the bytes sit in the kernel's page
    cache, which gives them back under pressure, and the process holds only the batch.
    """

    def __init__(self, path: Path, frames: int, height: int, width: int):
        self.path = Path(path)
        self.shape = (frames, height, width, 3)
        self.frame_bytes = height * width * 3
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, i: int) -> np.ndarray:
        """Frame ``i`` as uint8 (H, W, 3)."""
        if not 0 <= i < self.shape[0]:
            raise IndexError(i)
        raw = os.pread(self._fd, self.frame_bytes, int(i) * self.frame_bytes)
        if len(raw) != self.frame_bytes:
            raise ModelError(f"{self.path}: frame cache is truncated at frame {i}")
        return np.frombuffer(raw, np.uint8).reshape(self.shape[1:])

    def stack(self, indices) -> np.ndarray:
        """Frames at ``indices`` as uint8 (n, H, W, 3)."""
        return np.stack([self.read(i) for i in indices])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def build_cache(source: str, size: tuple[int, int] | None, cache_dir: Path, max_frames: int | None,
                progress: bool = True) -> tuple[FrameCache, dict]:
    """Decode ``source`` into the cache unless a cache of the same source and size exists."""
    info = video.probe(source)
    width, height = size or (info.width, info.height)
    stat = os.stat(source)
    key = {"source": os.path.abspath(source), "mtime_ns": stat.st_mtime_ns, "bytes": stat.st_size,
           "width": width, "height": height, "max_frames": max_frames}
    meta_path, data_path = cache_dir / "frames.json", cache_dir / "frames.u8"
    if meta_path.exists() and data_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key and data_path.stat().st_size == meta["frames"] * width * height * 3:
            return FrameCache(data_path, meta["frames"], height, width), meta
    cache_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    total = min(info.frames, max_frames) if max_frames else info.frames
    with atomic_write(data_path) as f, progress_bar(progress, total=total or None, desc="caching frames",
                                                    unit="frame") as bar:
        for batch in video.read_batches(source, (width, height), 32, max_frames):
            f.write(batch.tobytes())
            count += len(batch)
            bar.update(len(batch))
    meta = {"key": key, "frames": count, "fps": [info.fps.numerator, info.fps.denominator]}
    write_text_atomic(meta_path, json.dumps(meta))
    return FrameCache(data_path, count, height, width), meta


# -- schedule ----------------------------------------------------------------------------------

def lr_at(progress: float, opts: TrainOptions) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio * lr`` at the end of the budget."""
    p = min(max(progress, 0.0), 1.0)
    if p < opts.warmup:
        return opts.lr * max(p / opts.warmup, 0.01)
    t = (p - opts.warmup) / max(1e-9, 1 - opts.warmup)
    floor = opts.lr * opts.min_lr_ratio
    return floor + (opts.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


# -- latent ranges (for quantization-aware training and evaluation) ----------------------------

@torch.no_grad()
def latent_ranges(model: Autoencoder, data: FrameCache, device: torch.device, bits: int, max_frames: int = 2000,
                  batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The quantizer's per-dimension range at ``bits`` over the video's latents (evenly
    subsampled when long), by the rule the encoder uses (quantize.latent_range)."""
    idx = spread_indices(len(data), max_frames)
    z = torch.cat([model.encoder(to_tensor(data.stack(idx[s : s + batch]), device)).float().cpu()
                   for s in range(0, len(idx), batch)])
    lo, hi = latent_range(z.numpy(), bits)
    return torch.from_numpy(lo).to(device), torch.from_numpy(hi).to(device)


@torch.no_grad()
def evaluate(model: Autoencoder, data: FrameCache, device: torch.device, bits: int | None,
             decoder: torch.nn.Module | None = None, ranges: tuple[torch.Tensor, torch.Tensor] | None = None,
             max_frames: int = 500, batch: int = 16) -> float:
    """Mean per-frame PSNR on 8-bit RGB, with the decoder as shipped (``decoder``, when the caller
    has built it already) and (if ``bits``) latents quantized over ``ranges`` (latent_ranges'
    result, measured here unless the caller has it)."""
    idx = spread_indices(len(data), max_frames)
    decoder = decoder if decoder is not None else _as_shipped(model.decoder)
    quant = None
    if bits:
        lo, hi = ranges if ranges is not None else latent_ranges(model, data, device, bits)
        quant = Quantizer(bits, lo.cpu().numpy(), hi.cpu().numpy())
    meter = PSNRMeter()
    for s in range(0, len(idx), batch):
        ref = data.stack(idx[s : s + batch])
        z = model.encoder(to_tensor(ref, device))
        if quant is not None:
            z = torch.from_numpy(quant.dequantize(quant.quantize(z.cpu().numpy()))).to(device)
        meter.update(ref, to_uint8(decoder(z)))
    return meter.psnr


def _as_shipped(decoder: torch.nn.Module, data: bytes | None = None) -> torch.nn.Module:
    """A copy of the decoder that went through the downloadable file's format, as clients load it
    (``data``: that file, when the caller has built it already)."""
    import copy

    from .weights import dequantize_state

    if data is None:
        data = int8_state_bytes(decoder, shipped_widths(decoder))
    dec = copy.deepcopy(decoder).cpu()
    dec.load_state_dict(dequantize_state(st_load(data)))
    return dec.to(next(decoder.parameters()).device).eval()


# -- checkpoints -------------------------------------------------------------------------------

def _save_checkpoint(model_dir: Path, model: Autoencoder, opt: torch.optim.Optimizer, state: dict,
                     average: AveragedModel | None = None) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if average is not None:
        tensors.update({f"average.{k}": v.detach().cpu().contiguous() for k, v in average.state_dict().items()})
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        for k, v in opt.state.get(p, {}).items():
            tensors[f"opt.{i}.{k}"] = v.detach().cpu().reshape(v.shape).contiguous()
    ck = model_dir / CHECKPOINT_DIR
    ck.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(ck / "state.safetensors", st_save(tensors))
    write_text_atomic(ck / "state.json", json.dumps(state))  # written last: it marks a complete checkpoint


def _load_checkpoint(model_dir: Path, model: Autoencoder, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Load weights and moments from the checkpoint; returns its state and the QAT phase's weight
    average (state-dict tensors, empty when the run had not reached that phase)."""
    ck = model_dir / CHECKPOINT_DIR
    try:
        state = json.loads((ck / "state.json").read_text())
        tensors = st_load_file(str(ck / "state.safetensors"))
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: nothing to resume (no checkpoint)") from None
    except Exception as e:
        raise ModelError(f"{ck}: unreadable checkpoint ({e})") from None
    try:
        model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError:
        raise ModelError(f"{ck}: checkpoint does not match this architecture") from None
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            p = params[int(i)]
            # Moments take their parameter's memory layout (channels-last), as the fused step expects.
            opt.state[p][name] = torch.empty_like(p).copy_(v) if v.shape == p.shape else v
    return state, {k.removeprefix("average."): v for k, v in tensors.items() if k.startswith("average.")}


# -- the loop ----------------------------------------------------------------------------------

def _weight_average(decoder: torch.nn.Module) -> AveragedModel:
    """A running uniform average of the decoder's weights (SWA). The one-kernel update is asked
    for by name: left to choose, torch uses it on GPUs only, and its per-tensor loop on the CPU
    took 4 ms of every QAT step, a seventh of it."""
    return AveragedModel(decoder, multi_avg_fn=get_swa_multi_avg_fn(), use_buffers=False)


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def train(source: str, model_dir: str | os.PathLike, opts: TrainOptions, resume: bool = False) -> dict:
    """Fit a codec to ``source`` and write ``model_dir``; returns the final summary (rank 0)."""
    check_bits(opts.bits)
    if opts.weight_bits is not None:
        check_weight_bits(opts.weight_bits)
    check_weight_budget(opts.weight_budget)
    if opts.latent_dim <= 0:
        raise UsageError(f"--latent-dim must be positive, got {opts.latent_dim}")
    if opts.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {opts.batch_size}")
    if (opts.minutes is None) == (opts.epochs is None):
        raise UsageError("give exactly one of --minutes and --epochs")
    if (opts.minutes is not None and opts.minutes <= 0) or (opts.epochs is not None and opts.epochs <= 0):
        raise UsageError("the training budget must be positive")
    if not 0 <= opts.noise_from <= 1:
        raise UsageError(f"--noise-from must be between 0 and 1, got {opts.noise_from}")
    rank, world = _dist_info()
    distributed = world > 1
    device = pick_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    model_dir = Path(model_dir)
    main_rank = rank == 0

    info = video.probe(source)
    size = opts.size or (info.width, info.height)
    cfg = CodecConfig.plan(size[0], size[1], opts.latent_dim,
                           **{"weight_bits": opts.weight_bits or DEFAULT_WEIGHT_BITS, **(opts.arch or {})})
    # Rank 0 builds the cache; the others wait for it, then map the same file.
    if main_rank:
        data, meta = build_cache(source, size, model_dir / CACHE_DIR, opts.max_frames, opts.progress)
    if distributed:
        dist.barrier()
    if not main_rank:
        data, meta = build_cache(source, size, model_dir / CACHE_DIR, opts.max_frames, False)
    cfg.fps = meta["fps"][0] / meta["fps"][1]

    torch.manual_seed(opts.seed)
    model = build_model(cfg).to(device)
    layout = torch.channels_last if opts.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    autocast_dtype = pick_autocast(opts.precision, device)
    net: torch.nn.Module = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    # The fused step is one kernel per parameter group; the per-tensor loop it replaces was a
    # fifth of a CPU step for this small network. One group: the QAT phase freezes the encoder by
    # leaving its gradients empty, which Adam skips (a group of its own at a zero rate still had
    # its moments stepped, and logged 0 as the run's rate).
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr, fused=device.type in ("cpu", "cuda"))
    step, epoch, elapsed_before, lr_scale = 0, 0, 0.0, 1.0
    history: list[dict] = []
    resumed_average: dict = {}
    if resume:
        state, resumed_average = _load_checkpoint(model_dir, model, opt)
        step, epoch, elapsed_before = state["step"], state["epoch"], state["elapsed"]
        history = state.get("history", [])
        lr_scale = float(state.get("lr_scale", 1.0))  # a run that recovered from a collapse keeps its lower rate
        # The widths a budget run chose (once its QAT phase began); none when one width was asked for.
        cfg.weight_layer_bits = state.get("weight_layer_bits", {}) if opts.weight_bits is None else {}

    per_rank_batch = max(1, opts.batch_size // world)
    sampler = (DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=opts.seed)
               if distributed else None)
    use_ms_ssim = opts.ms_ssim_weight > 0 and ms_ssim_scales(size[1], size[0]) > 0
    steps_per_epoch = math.ceil(len(data) / (per_rank_batch * world))
    total_steps = opts.epochs * steps_per_epoch if opts.epochs else None
    budget_s = opts.minutes * 60 if opts.minutes else None

    def progress_state(elapsed: float) -> dict:
        """What a checkpoint records beside the tensors; the widths, so a resumed QAT phase keeps them."""
        return {"step": step, "epoch": epoch, "elapsed": elapsed, "history": history[-2000:],
                "weight_layer_bits": cfg.weight_layer_bits, "lr_scale": guard.lr_scale}

    def choose_weight_widths() -> None:
        """Under a budget, pick the decoder's per-layer widths once (a resume keeps its own)."""
        if opts.weight_bits is None and not cfg.weight_layer_bits:
            cfg.weight_layer_bits = _allocate(model, data, device, opts.weight_budget, distributed)

    blocks = model.trains_in_blocks
    pixel_mask = model.block_mask(device).contiguous(memory_format=layout) if blocks else None
    qat_lo = qat_hi = None
    noise_lo = noise_hi = None  # the ranges that size the latent noise, measured again every so often
    noise_due = 0  # the step at which they are measured next
    average: AveragedModel | None = None  # the decoder's weights averaged over the QAT phase
    start = time.monotonic() - elapsed_before
    last_ck = time.monotonic()
    psnr_ema = None
    guard = CollapseGuard(model, opt, lr_scale=lr_scale)
    collapsed = False
    bar = progress_bar(opts.progress and main_rank, total=total_steps or int(budget_s), leave=True,
                       unit="step" if total_steps else "s", desc="training",
                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
    bar.update(step if total_steps else int(elapsed_before))
    shown = int(elapsed_before)
    # A fresh run starts a fresh log; a resumed one continues it.
    log_f = open(model_dir / TRAIN_LOG, "a" if resume else "w") if main_rank else None
    interrupted = False
    try:
        done = False
        while not done:
            if sampler is not None:
                sampler.set_epoch(epoch)
            gen = torch.Generator().manual_seed(opts.seed * 1000003 + epoch)
            # Batches are read straight from the cache; a DataLoader's fetch-and-collate added
            # 2 % to a step of two frames, for nothing a batch of whole frames needs.
            order = list(sampler or RandomSampler(data, generator=gen))
            for first in range(0, len(order), per_rank_batch):
                batch = torch.from_numpy(data.stack(order[first : first + per_rank_batch]))
                elapsed = time.monotonic() - start
                progress = step / total_steps if total_steps else elapsed / budget_s
                # Stop, collapsed, unhealthy: every rank must take the same decisions on the same
                # step, or their weights part ways.
                flags = torch.tensor([float(progress >= 1), float(collapsed), float(not guard.healthy)])
                if distributed:
                    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
                if flags[0].item() > 0:
                    done = True
                    break
                if flags[1].item() > 0:
                    if guard.restore(step) and average is not None:
                        # Steps of the collapse went into the average: begin it again from the restored weights.
                        average = _weight_average(model.decoder)
                    collapsed = False
                    noise_due = step  # the restored encoder's latents have other ranges
                guard.maybe_snapshot(step, healthy=flags[2].item() == 0)
                qat = progress >= 1 - opts.qat_fraction
                noisy = not qat and progress >= opts.noise_from
                for g in opt.param_groups:
                    g["lr"] = lr_at(progress, opts) * guard.lr_scale
                batch = batch.to(device)
                if blocks:
                    x = model.to_blocks(batch).contiguous(memory_format=layout)
                else:
                    x = batch.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=layout)
                if qat and qat_lo is None:
                    guard.rebase()
                    choose_weight_widths()
                    set_weight_fake_quant(model.decoder, shipped_widths(model.decoder))
                    # The encoder is frozen from here, so its latents' ranges are final: measured once.
                    qat_lo, qat_hi = _shared_ranges(model, data, device, opts.bits, distributed)
                    average = _weight_average(model.decoder)
                    if resumed_average:
                        average.load_state_dict(resumed_average)
                if noisy and step >= noise_due:
                    if noise_lo is None:
                        # The noise begins. One step wide, it lowers the PSNR on purpose, at 1 bit
                        # by more than the guard's margin: without this, every 1-bit run
                        # "collapsed" into its weights from before the noise, over and over, with
                        # the learning rate halved each time.
                        guard.rebase()
                    # A sample of frames sizes the noise well enough, and the ranges drift slowly
                    # as the encoder trains: on a long movie, measuring over all of them every
                    # step would cost more than the steps.
                    noise_lo, noise_hi = _shared_ranges(model, data, device, opts.bits, distributed,
                                                        NOISE_RANGE_FRAMES)
                    noise_due = step + NOISE_REFRESH_STEPS
                with (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()):
                    if qat:  # the encoder is frozen: the decoder fits the very codes it will be sent
                        y = _forward_latents(net, model, x, blocks, distributed, frozen_encoder=True,
                                             latent_fn=lambda z: fake_quantize(z, qat_lo, qat_hi, opts.bits))
                    elif noisy:
                        y = _forward_latents(
                            net, model, x, blocks, distributed, frozen_encoder=False,
                            latent_fn=lambda z: add_quantization_noise(z, noise_lo, noise_hi, opts.bits))
                    else:
                        y = net(x, blocks)
                y = y.float()
                if blocks:  # the mean over the frame's pixels, leaving out the canvas padding
                    mse = ((y - x) ** 2 * pixel_mask).sum() / (len(batch) * 3 * size[0] * size[1])
                else:
                    mse = torch.mean((y - x) ** 2)
                loss = mse
                if use_ms_ssim:
                    fy, fx = (model.from_blocks(y), model.from_blocks(x)) if blocks else (y, x)
                    loss = (1 - opts.ms_ssim_weight) * mse + opts.ms_ssim_weight * (1 - ms_ssim(fy, fx).mean())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if qat and distributed:  # DDP gave the frozen encoder gradients (see _forward_latents)
                    for p in model.encoder.parameters():
                        p.grad = None
                # Clipping keeps an early bad step from saturating the sigmoid output for good.
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip, foreach=True)
                opt.step()
                if average is not None:
                    average.update_parameters(model.decoder)
                step += 1
                psnr = mse_to_psnr(mse.item(), 1.0)
                psnr_ema = psnr if psnr_ema is None else 0.9 * psnr_ema + 0.1 * psnr
                collapsed = guard.suspicious(psnr)
                if main_rank:
                    if total_steps:
                        bar.update(1)
                    elif int(elapsed) > shown:
                        bar.update(min(int(elapsed), int(budget_s)) - shown)
                        shown = min(int(elapsed), int(budget_s))
                    bar.set_postfix_str(f"PSNR {psnr_ema:.2f} dB lr {opt.param_groups[0]['lr']:.1e}"
                                        + (" QAT" if qat else " noise" if noisy else ""), refresh=False)
                    if step % 25 == 0:
                        rec = {"step": step, "epoch": epoch, "elapsed_s": round(elapsed, 2), "lr": opt.param_groups[0]["lr"],
                               "train_psnr": round(psnr_ema, 3), "noise": noisy, "qat": qat}
                        log_f.write(json.dumps(rec) + "\n")
                        history.append(rec)
                    if time.monotonic() - last_ck >= opts.checkpoint_seconds:
                        _save_checkpoint(model_dir, model, opt, progress_state(elapsed), average)
                        last_ck = time.monotonic()
            else:
                epoch += 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if log_f:
            log_f.flush()
    if interrupted:
        if main_rank:
            _save_checkpoint(model_dir, model, opt, progress_state(time.monotonic() - start), average)
        raise KeyboardInterrupt
    set_weight_fake_quant(model.decoder, None)
    averaged_steps = int(average.n_averaged) if average is not None else 0
    if averaged_steps:
        model.decoder.load_state_dict(average.module.state_dict())
    choose_weight_widths()  # here only when no QAT phase ran (--qat-fraction 0)
    summary = {}
    if main_rank:
        model.eval()
        widths = shipped_widths(model.decoder)
        shipped_file = int8_state_bytes(model.decoder, widths)
        sent = len(compress_decoder(shipped_file))
        params = count_parameters(model.decoder)
        shipped = _as_shipped(model.decoder, shipped_file)
        psnr_float = evaluate(model, data, device, None, shipped)
        # The QAT phase measured the ranges on the encoder it then froze: they are final.
        psnr_q = evaluate(model, data, device, opts.bits, shipped, None if qat_lo is None else (qat_lo, qat_hi))
        summary = {
            "source": os.path.basename(source), "width": size[0], "height": size[1], "frames": len(data),
            "steps": step, "epochs": epoch, "seconds": round(time.monotonic() - start, 1),
            "psnr_float": round(psnr_float, 3), "psnr_quantized": round(psnr_q, 3), "qat_bits": opts.bits,
            "collapse_restores": guard.restores, "lr_scale": guard.lr_scale, "averaged_steps": averaged_steps,
            "weight_widths": widths, "decoder_bytes_sent": sent, "decoder_params": params,
            "decoder_bits_per_weight": round(8 * sent / params, 3),
            "decoder_macs_per_pixel": round(macs_per_pixel(model.decoder)),
            "options": {k: v for k, v in asdict(opts).items() if k not in ("progress",)},
        }
        model.to("cpu")
        save_model(model, model_dir, extra=summary)
        log_f.write(json.dumps({"final": summary}) + "\n")
        log_f.close()
        _save_checkpoint(model_dir, model, opt, {**progress_state(time.monotonic() - start), "finished": True})
    if distributed:
        dist.barrier()
    return summary


def _allocate(model: Autoencoder, data: FrameCache, device: torch.device, budget: float, distributed: bool
              ) -> dict[str, float]:
    """Per-layer weight widths within ``budget`` bits per decoder parameter (see weight_budget),
    measured on a spread of the video's frames; every rank takes rank 0's choice."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        n = min(16, max(4, ALLOCATION_PIXELS // (model.cfg.width * model.cfg.height)))
        latents = model.encoder(to_tensor(data.stack(spread_indices(len(data), n)), device))
    widths = allocate_weight_bits(model.decoder, latents, budget,
                                  lambda w: len(compress_decoder(int8_state_bytes(model.decoder, w))))
    model.train(was_training)
    if distributed:
        box = [widths]
        dist.broadcast_object_list(box, src=0)
        widths = box[0]
    log.info("decoder weight widths for %g bits/weight: %s", budget, widths)
    return widths


# The allocation decodes its frames once per layer and width (about 100 times): 16 frames at
# 320x180 take 2-3 s on 2 cores; larger frames get fewer of them, at least 4.
ALLOCATION_PIXELS = 16 * 320 * 180


def _shared_ranges(model: Autoencoder, data: FrameCache, device: torch.device, bits: int, distributed: bool,
                   max_frames: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """latent_ranges, widened to the union over DDP ranks so every rank quantizes alike."""
    lo, hi = latent_ranges(model, data, device, bits, max_frames)
    if distributed:
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return lo, hi


def _forward_latents(net, model: Autoencoder, x, blocks: bool, distributed: bool, frozen_encoder: bool,
                     latent_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Encode, pass the latents through ``latent_fn`` (fake quantization or noise), decode.
    A frozen encoder runs without autograd, so its backward is skipped. Under DDP the wrapped
    module must run the forward (and every parameter must get a gradient), so ``latent_fn`` is
    applied through a temporary forward hook on the encoder, and with a frozen encoder the loop
    drops the encoder's gradients before the step (and before they count in the clipping norm)."""
    if not distributed:
        with torch.no_grad() if frozen_encoder else nullcontext():
            z = model.encoder(x, blocks)
        return model.decoder(latent_fn(z), blocks)
    handle = model.encoder.register_forward_hook(lambda _m, _i, out: latent_fn(out))
    try:
        return net(x, blocks)
    finally:
        handle.remove()

"""Fitting a decoder part per scene onto a trained model (``latentcast parts``).

The base model is trained on the whole movie first. Its encoder then gives the movie's latents,
which the scene split reads (codec.scenes) and which are quantized exactly as ``encode`` will
quantize them. Each scene's part is then fit on the scene's own frames, decoding those very
quantized latents, with the weights seen through the shipped widths' fake quantization.

What a part retunes (``layers``):

- ``affine``: every conv's per-output-channel gain and its bias. The codes stay the base's (a
  gain moves only each channel's scale), so a part is a scale and a bias per channel;
- a layer's name as in the decoder (``head``, ``stem``, ``stages.1``): that layer's weights
  too, coded as code deltas against the base.

Scenes train one after another, each on its share of the budget (its frames' share of the
movie). Under torchrun each rank fits every world-th scene. A finished scene's part is kept
on disk with a record of it, so a run cut short resumes at the first scene it had not fit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load as st_load
from torch import nn
from torch.nn.utils import parametrize

from ..format.atomic import write_bytes_atomic, write_text_atomic
from ..format.chunks import encode_chunk
from ..format.decoder_file import compress_decoder, sha256_bytes
from ..format.decoder_state import State, load_state_verified
from ..format.errors import UsageError
from ..format.quantizer import Quantizer
from ..nn.config import DECODER, load_config, read_model_file, top_code
from ..nn.encode import latents_of
from ..nn.model import Decoder, QuantAwareConv2d, set_weight_fake_quant
from ..nn.part_index import PARTS_DIR, PartEntry, PartIndex, part_path, save_part_index
from ..nn.parts import make_part
from ..nn.tensors import to_tensor, to_uint8
from ..nn.weight_codes import channel_scales
from ..nn.weights import decoder_from_state, int8_state_bytes, load_encoder, shipped_widths
from ..progress import progress_bar
from ..quality import PSNRMeter
from ..scenes import DEFAULT_MIN_SCENE_S, DEFAULT_SENSITIVITY, Scene, split_scenes
from .data import CACHE_DIR, FrameCache, build_cache
from .distributed import rank_and_world

AFFINE = "affine"
# What doubling a scene's bytes buys on the usual rate-distortion curves (x264 and x265 gain
# about 6 dB a doubling at these rates): a part is sent only where it buys more than its bytes
# would elsewhere on the curve.
DEFAULT_RD_SLOPE = 6.0
DEFAULT_LAYERS = (AFFINE,)
DONE_DIR = "done"  # parts/done/<start>.json: one record per finished scene, for resuming


@dataclass
class PartOptions:
    """How to fit scene parts. The budget is ``seconds_per_second`` of wall clock per second of
    video, shared among the scenes by their length, or ``epochs`` passes over each scene's frames
    (repeatable on any machine, however loaded)."""

    seconds_per_second: float = 4.0
    epochs: float | None = None
    layers: tuple[str, ...] = DEFAULT_LAYERS
    lr: float = 1e-3
    batch_size: int = 4
    sensitivity: float = DEFAULT_SENSITIVITY
    min_scene_s: float = DEFAULT_MIN_SCENE_S
    rd_slope: float = DEFAULT_RD_SLOPE
    delta_penalty: float = 0.0
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def validate(self) -> None:
        if not self.seconds_per_second > 0:
            raise UsageError("--seconds-per-second must be positive")
        if self.epochs is not None and not self.epochs > 0:
            raise UsageError("--epochs must be positive")
        if not self.layers:
            raise UsageError("--layers needs at least one of: affine, or a decoder layer's name")
        if not (self.lr > 0 and self.batch_size >= 1):
            raise UsageError("--lr must be positive and --batch-size at least 1")
        if not self.delta_penalty >= 0:
            raise UsageError("--delta-penalty must be 0 or more")
        if not self.rd_slope >= 0:
            raise UsageError("--rd-slope must be 0 or more (dB a doubling of the rate buys)")


class _ChannelGain(nn.Module):
    """A weight seen as weight * gain per output channel: the base's codes with new scales."""

    def __init__(self, channels: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.gain.view(-1, *([1] * (weight.ndim - 1)))


def check_layers(decoder: nn.Module, layers: tuple[str, ...]) -> set[str]:
    """The whole layers ``layers`` names (all but ``affine``); UsageError for one the decoder lacks."""
    names = {n for n, m in decoder.named_modules() if isinstance(m, QuantAwareConv2d)}
    whole = {n for n in layers if n != AFFINE}
    unknown = {n for n in whole if not any(c == n or c.startswith(n + ".") for c in names)}
    if unknown:
        raise UsageError(f"--layers: the decoder has no layer {sorted(unknown)[0]!r}; its convs: "
                         f"{', '.join(sorted(names))}")
    return whole


def _trainable(decoder: nn.Module, layers: tuple[str, ...]) -> list[nn.Parameter]:
    """Open the parameters ``layers`` names for training, freeze the rest; returns the open ones."""
    whole = check_layers(decoder, layers)
    for p in decoder.parameters():
        p.requires_grad_(False)
    opened: list[nn.Parameter] = []
    for name, conv in decoder.named_modules():
        if not isinstance(conv, QuantAwareConv2d):
            continue
        if any(name == n or name.startswith(n + ".") for n in whole):
            conv.weight.requires_grad_(True)
            opened.append(conv.weight)
        elif AFFINE in layers:
            parametrize.register_parametrization(conv, "weight", _ChannelGain(conv.out_channels))
            opened.append(conv.parametrizations.weight[0].gain)
        if AFFINE in layers or conv.weight.requires_grad:
            conv.bias.requires_grad_(True)
            opened.append(conv.bias)
    return opened


def _fold(decoder: nn.Module) -> None:
    """Fold every gain into its weight: the decoder's state dict is a plain decoder's again."""
    for conv in decoder.modules():
        if parametrize.is_parametrized(conv, "weight"):
            parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)


def _scene_psnr(decoder: nn.Module, data: FrameCache, latents: np.ndarray, scene: Scene, batch: int = 16) -> float:
    meter = PSNRMeter()
    with torch.no_grad():
        for s in range(scene.start, scene.end, batch):
            e = min(scene.end, s + batch)
            ref = data.stack(range(s, e))
            meter.update(ref, to_uint8(decoder(torch.from_numpy(np.ascontiguousarray(latents[s:e])))))
    return meter.psnr


def _delta_anchors(decoder: nn.Module) -> list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]]:
    """For each whole layer a part retunes: its weight, the base's, and one code step per channel."""
    out = []
    for conv in decoder.modules():
        # A gain-only layer's weight is recomputed every step (parametrized): it has no codes to move.
        if isinstance(conv, QuantAwareConv2d) and not parametrize.is_parametrized(conv, "weight") \
                and conv.weight.requires_grad and conv.fake_quant_bits is not None:
            w0 = conv.weight.detach().clone()
            out.append((conv.weight, w0, channel_scales(w0, top_code(conv.fake_quant_bits))))
    return out


def _delta_cost(anchors) -> torch.Tensor:
    """How far the retuned layers moved from the base, in code steps, per weight: an L1 pull that
    leaves most codes where the base has them, so the part's deltas are mostly 0."""
    total = sum((w - w0).abs().div(step).sum() for w, w0, step in anchors)
    return total / sum(w.numel() for w, _, _ in anchors)


def fit_scene(base_state: State, cfg, data: FrameCache, latents: np.ndarray, scene: Scene,
              seconds: float, opts: PartOptions) -> tuple[State, float, float, int]:
    """One scene's int8 state, fit for ``seconds`` (or ``opts.epochs``); returns it with the scene's PSNR with the base
    and with the part, and the steps taken."""
    decoder = decoder_from_state(base_state, cfg).to(memory_format=torch.contiguous_format)
    before = _scene_psnr(decoder, data, latents, scene)
    widths = shipped_widths(decoder)  # before the gains rename the weights in the state dict
    params = _trainable(decoder, opts.layers)
    set_weight_fake_quant(decoder, widths)
    opt = torch.optim.Adam(params, lr=opts.lr)
    anchors = _delta_anchors(decoder) if opts.delta_penalty else []
    gen = torch.Generator().manual_seed(opts.seed + scene.start)
    decoder.train()
    steps, t0 = 0, time.monotonic()
    fixed = math.ceil(opts.epochs * scene.frames / opts.batch_size) if opts.epochs else None
    while steps < fixed if fixed else (time.monotonic() - t0 < seconds or steps == 0):
        idx = (scene.start + torch.randint(0, scene.frames, (opts.batch_size,), generator=gen)).tolist()
        target = to_tensor(data.stack(idx), torch.device("cpu"))
        z = torch.from_numpy(np.ascontiguousarray(latents[idx]))
        loss = F.mse_loss(decoder(z), target)
        if anchors:
            loss = loss + opts.delta_penalty * _delta_cost(anchors)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    decoder.eval()
    set_weight_fake_quant(decoder, None)
    _fold(decoder)
    state = st_load(int8_state_bytes(decoder, widths))
    after = _scene_psnr(decoder_from_state(state, cfg), data, latents, scene)
    if after < before:  # a fit that went nowhere ships as the base: a part never costs quality
        return dict(base_state), before, before, steps
    return state, before, after, steps


def movie_latents(model_dir: Path, data: FrameCache, bits: int, batch: int = 32
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The movie's float latents, their quantized symbols, and the latents as ``encode`` will
    send them (dequantized), over ranges fit to the whole movie, as write_latents fits them."""
    z = latents_of((data.stack(range(s, min(len(data), s + batch))) for s in range(0, len(data), batch)),
                   load_encoder(model_dir))
    quant = Quantizer.fit(z, bits)
    q = quant.quantize(z)
    return z, q, quant.dequantize(q).astype(np.float32)


def fit_parts(source: str, model_dir: str | os.PathLike, opts: PartOptions) -> PartIndex | None:
    """Fit a part per scene of ``source`` onto the model in ``model_dir`` and write parts.json
    (rank 0, once every scene has its part); returns it, or None on a rank that does not write it."""
    opts.validate()
    model_dir = Path(model_dir)
    rank, world = rank_and_world()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cfg = load_config(model_dir)
    base_bytes = read_model_file(model_dir / DECODER)
    base_state = load_state_verified(base_bytes, cfg.decoder_sha256, str(model_dir / DECODER))
    check_layers(Decoder(cfg), opts.layers)  # before the long part: caching frames and encoding them
    data, meta = build_cache(source, (cfg.width, cfg.height), model_dir / CACHE_DIR, None, opts.progress and rank == 0)
    fps = meta["fps"][0] / meta["fps"][1]
    floats, symbols, latents = movie_latents(model_dir, data, cfg.trained_bits)
    scenes = split_scenes(floats, fps, opts.sensitivity, opts.min_scene_s)  # cuts are sharper before quantizing
    del floats
    base_sent = len(compress_decoder(base_bytes))
    # What a scene costs without a part: its latents, and its frames' share of the base.
    scene_bytes = {s.start: len(encode_chunk(symbols[s.start : s.end], cfg.trained_bits))
                   + base_sent * s.frames / len(data) for s in scenes}
    done = model_dir / PARTS_DIR / DONE_DIR
    done.mkdir(parents=True, exist_ok=True)
    budget = opts.seconds_per_second * len(data) / fps
    mine = [s for i, s in enumerate(scenes) if i % world == rank]
    with progress_bar(opts.progress and rank == 0, total=len(mine), desc="fitting scene parts",
                      unit="scene") as bar:
        for scene in mine:
            if _finished(done, scene, cfg.decoder_sha256, opts) is None:
                _fit_and_keep(scene, budget * scene.frames / len(data), base_state, cfg, data, latents, opts,
                              model_dir, done, rank, scene_bytes[scene.start])
            bar.update(1)
    if rank != 0:
        return None
    fitted = _wait_for_all(done, scenes, cfg.decoder_sha256, opts, world)
    index = PartIndex(cfg.decoder_sha256, len(data), [_decide(e, cfg.decoder_sha256, opts.rd_slope) for e in fitted])
    save_part_index(model_dir, index)
    return index


def worth_sending(gain_db: float, part_bytes: int, scene_bytes: float, rd_slope: float) -> bool:
    """Whether a part buys more than its bytes would elsewhere on a curve of ``rd_slope`` dB per
    doubling of the scene's bytes (``scene_bytes``: what the scene costs without it)."""
    return gain_db > 0 and gain_db >= rd_slope * math.log2(1 + part_bytes / max(scene_bytes, 1.0))


def _decide(fit: PartEntry, base_sha256: str, rd_slope: float) -> PartEntry:
    """What ships for a scene: its fitted part if it is worth its bytes, else the base alone."""
    if worth_sending(fit.psnr_fit - fit.psnr_base, fit.bytes_sent, fit.scene_bytes, rd_slope):
        return dataclasses.replace(fit, psnr_part=fit.psnr_fit)
    return dataclasses.replace(fit, sha256=base_sha256, psnr_part=fit.psnr_base, bytes_sent=0)


def _record_key(scene: Scene, base_sha256: str, opts: PartOptions) -> dict:
    return {"start": scene.start, "end": scene.end, "base_sha256": base_sha256, "layers": list(opts.layers),
            "seconds_per_second": opts.seconds_per_second, "delta_penalty": opts.delta_penalty,
            **({"epochs": opts.epochs} if opts.epochs else {})}


def _finished(done: Path, scene: Scene, base_sha256: str, opts: PartOptions) -> PartEntry | None:
    """The scene's part from an earlier run with the same base and options, if its file is sound."""
    path = done / f"{scene.start}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != _record_key(scene, base_sha256, opts):
        return None
    entry = PartEntry(**record["entry"])
    part = part_path(done.parent.parent, entry.sha256)
    return entry if part.exists() and sha256_bytes(part.read_bytes()) == entry.sha256 else None


def _fit_and_keep(scene: Scene, seconds: float, base_state, cfg, data, latents, opts: PartOptions, model_dir: Path,
                  done: Path, rank: int, scene_bytes: float) -> PartEntry:
    state, before, after, steps = fit_scene(base_state, cfg, data, latents, scene, seconds, opts)
    part = make_part(base_state, state, cfg.decoder_sha256)
    sha = sha256_bytes(part)
    write_bytes_atomic(part_path(model_dir, sha), part)
    entry = PartEntry(scene.start, scene.end, sha, round(before, 3), round(after, 3), len(compress_decoder(part)),
                      psnr_fit=round(after, 3), scene_bytes=round(scene_bytes))
    write_text_atomic(done / f"{scene.start}.json",
                      json.dumps({"key": _record_key(scene, cfg.decoder_sha256, opts), "entry": entry.__dict__,
                                  "rank": rank, "steps": steps}))
    return entry


def _wait_for_all(done: Path, scenes: list[Scene], base_sha256: str, opts: PartOptions, world: int,
                  timeout_s: float = 24 * 3600) -> list[PartEntry]:
    """Every scene's entry; with other ranks, wait until they have written theirs."""
    deadline = time.monotonic() + (timeout_s if world > 1 else 0)
    while True:
        entries = [_finished(done, s, base_sha256, opts) for s in scenes]
        if all(entries):
            return entries
        if time.monotonic() >= deadline:
            missing = sum(e is None for e in entries)
            raise UsageError(f"{missing} scene parts are missing; run again to fit them")
        time.sleep(1.0)


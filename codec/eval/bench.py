"""The rate-distortion benchmark: latentcast against x264, x265 and SVT-AV1 on the same frames.

    source --PyAV, once--> RGB frames at the bench size  (the ground truth for every codec)
      |-- latentcast: encoder -> latents -> container at 2..8 bits -> decoder -> RGB
      |-- classical:  RGB -> yuv420p -> encoder (CRF sweep) -> packets -> decoder -> yuv420p -> RGB
      v
    PSNR / MS-SSIM / Y-PSNR against the ground truth; bitrate from real bytes

Learned bitrates count the container's chunk bytes (``streaming``), and those plus the
coded decoder download spread over the clip (``total``). Classical bitrates count the
encoded packets' bytes. Every codec's RGB<->YUV conversion is swscale's, the same for all.
Every point also carries its worst scene's PSNR against its mean (``worst_scene_db``), over one
split for all codecs: the first model's scene parts, or the cuts in its latents.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .. import audio, video
from ..format.audio_info import DEFAULT_AUDIO_KBPS
from ..format.container import DEFAULT_CHUNK_SECONDS, Container, chunk_frames_for, write_latents
from ..format.errors import UsageError
from ..format.quantizer import DEFAULT_REFINE_STEPS, Quantizer
from ..format.rates import kbps
from ..nn.config import load_config
from ..nn.encode import encode_batches
from ..nn.ms_ssim import ms_ssim, ms_ssim_scales
from ..nn.part_index import model_parts
from ..nn.refine import refine_to_spill, torch_decoder_at
from ..nn.tensors import to_tensor
from ..nn.weights import load_encoder
from ..progress import progress_bar
from ..quality import Y_PSNR_STANDARD, PSNRMeter, capped_psnrs, luma
from ..runtime.decode import decode_movie
from ..runtime.download_size import model_download_bytes
from ..runtime.scene_decoders import model_decoders
from ..scenes import split_scenes
from .bd import bd_psnr, bd_rate, rd_hull
from .classical import ClassicalCodec, parse_codecs, run_classical
from .report import LEARNED, write_results

log = logging.getLogger(__name__)

LEARNED_BITS = (2, 3, 4, 5, 6, 7, 8)


# -- measuring ---------------------------------------------------------------------------------

@dataclass
class Quality:
    psnr: float
    psnr_mse: float
    y_psnr: float
    ms_ssim: float | None
    worst_scene_db: float | None = None  # the worst scene's PSNR against the mean, None for one scene


class QualityMeter:
    """PSNR, luma PSNR and MS-SSIM of decoded frames against the reference, frame by frame, and
    the worst of ``scenes`` ([start, end) frame spans) against the mean."""

    def __init__(self, reference: np.ndarray, scenes: list[tuple[int, int]] = ()):
        self.reference = reference
        self.scenes = scenes
        h, w = reference.shape[1:3]
        self.ms_ssim_ok = ms_ssim_scales(h, w) == 5
        self.rgb, self.y = PSNRMeter(), []
        self.ssim: list[float] = []
        self.i = 0

    def update(self, decoded: np.ndarray) -> None:
        ref = self.reference[self.i : self.i + len(decoded)]
        self.rgb.update(ref, decoded)
        self.y += [float(np.mean((a - b) ** 2)) for a, b in zip(luma(ref), luma(decoded))]
        if self.ms_ssim_ok:
            with torch.no_grad():
                self.ssim += ms_ssim(to_tensor(decoded), to_tensor(ref)).tolist()  # float32: ~1e-6 off float64, far faster
        self.i += len(decoded)

    def result(self) -> Quality:
        if self.i != len(self.reference):
            raise RuntimeError(f"decoded {self.i} frames of {len(self.reference)}")
        return Quality(self.rgb.psnr, self.rgb.psnr_of_mean_mse,
                       float(np.mean(capped_psnrs(self.y))),
                       float(np.mean(self.ssim)) if self.ms_ssim_ok else None, self.rgb.worst_span_db(self.scenes))


def ms_ssim_note(height: int, width: int) -> str | None:
    if ms_ssim_scales(height, width) == 5:
        return None
    return f"frames of {width}x{height} are too small for 5-scale MS-SSIM (need at least 176 pixels a side)"


def point(codec: str, preset: str | None, nbytes: int, n_frames: int, fps: Fraction, w: int, h: int, q: Quality,
          enc_fps: float, dec_fps: float, **extra) -> dict:
    seconds = n_frames / float(fps)
    return {
        "codec": codec, "preset": preset, "crf": None, "bits": None, "accounting": None, "model": None,
        "bytes": nbytes, "kbps": nbytes * 8 / seconds / 1000, "bpp": nbytes * 8 / (w * h * n_frames),
        "psnr": q.psnr, "psnr_mse": q.psnr_mse, "ms_ssim": q.ms_ssim, "y_psnr": q.y_psnr,
        "worst_scene_db": q.worst_scene_db,
        "enc_fps": enc_fps, "dec_fps": dec_fps, **extra,
    }


# -- the benchmark -----------------------------------------------------------------------------

@dataclass
class BenchOptions:
    size: tuple[int, int] | None = None
    frames: int | None = None
    codecs: list[ClassicalCodec] = field(default_factory=lambda: parse_codecs("x264,x265,av1"))
    bits: tuple[int, ...] = LEARNED_BITS
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    progress: bool = True
    extra_sweep_points: int = 4
    refine_steps: int = DEFAULT_REFINE_STEPS  # codec.nn.refine, as encode and ingest do it


def load_frames(source: str, size: tuple[int, int], max_frames: int | None) -> tuple[np.ndarray, Fraction]:
    info = video.probe(source)
    frames = np.stack(list(video.read_frames(source, size, max_frames)))
    return frames, info.fps


def bench_scenes(parts: tuple[tuple[int, str], ...], latents: np.ndarray, fps: Fraction) -> list[tuple[int, int]]:
    """The scenes every point's worst-scene PSNR is measured over: the model's scene parts where
    it has them, else the cuts codec.scenes finds in its latents."""
    n = len(latents)
    starts = [start for start, _ in parts] if parts else [s.start for s in split_scenes(latents, float(fps))]
    bounds = sorted({0, *(s for s in starts if 0 < s < n)}) + [n]
    return list(zip(bounds, bounds[1:]))


def bench_learned(model_dir: str, frames: np.ndarray, fps: Fraction, out_dir: Path, opts: BenchOptions,
                  bar, scenes: list[tuple[int, int]] | None = None) -> tuple[list[dict], list[tuple[int, int]]]:
    """Every bit width of one model, and the scenes measured over (``scenes``, else its own)."""
    cfg = load_config(model_dir)
    encoder = load_encoder(model_dir)
    n, h, w, _ = frames.shape
    parts = model_parts(model_dir, cfg.decoder_sha256, n)
    decoders = model_decoders(model_dir, parts)
    decoder_at = torch_decoder_at(model_dir, cfg, parts) if opts.refine_steps else None
    # Exactly what a viewer downloads: the base and every part the movie's scenes use, each with
    # what describes it (codec.runtime.download_size).
    decoder_bytes = model_download_bytes(model_dir, parts)
    name = Path(model_dir).name
    points = []
    with tempfile.TemporaryFile() as spill:
        t0 = time.perf_counter()
        count = encode_batches((frames[s : s + 16] for s in range(0, n, 16)), encoder, spill)
        enc_s = time.perf_counter() - t0
        latents = np.memmap(spill, dtype=np.float32, mode="r", shape=(count, cfg.latent_dim))
        if scenes is None:
            scenes = bench_scenes(parts, latents, fps)
        for bits in opts.bits:
            path = out_dir / f"{LEARNED}-{name}-{bits}bit.lcv"
            t0 = time.perf_counter()
            quant = Quantizer.fit(latents, bits)
            with tempfile.TemporaryFile() as refined_spill:
                coded = latents if not opts.refine_steps else refine_to_spill(
                    decoder_at, parts, (frames[s : s + 16] for s in range(0, n, 16)), latents, quant, opts.refine_steps,
                    refined_spill)
                res = write_latents(coded, (cfg.width, cfg.height), fps, path, bits,
                                    chunk_frames_for(fps, opts.chunk_seconds), cfg.decoder_sha256, parts,
                                    quantizer=quant)
                del coded
            write_s = time.perf_counter() - t0
            meter = QualityMeter(frames, scenes)
            t0 = time.perf_counter()
            dec_s = 0.0
            with Container(path) as movie:
                it = decode_movie(movie, decoders)
                while True:
                    t1 = time.perf_counter()
                    batch = next(it, None)
                    dec_s += time.perf_counter() - t1
                    if batch is None:
                        break
                    meter.update(batch)
            q = meter.result()
            common = dict(bits=bits, model=name, container=path.name, ms_ssim_note=ms_ssim_note(h, w),
                          refine_steps=opts.refine_steps)
            enc_fps, dec_fps = n / (enc_s + write_s), n / dec_s
            speed = (enc_fps, dec_fps)
            points.append(point(LEARNED, None, res.streaming_bytes + decoder_bytes, n, fps, w, h, q, *speed,
                                accounting="total", decoder_bytes=decoder_bytes, **common))
            points.append(point(LEARNED, None, res.streaming_bytes, n, fps, w, h, q, *speed,
                                accounting="streaming", **common))
            bar.update(1)
        del latents
    return points, scenes


def bench_classical(codec: ClassicalCodec, frames: np.ndarray, fps: Fraction, target: tuple[float, float],
                    opts: BenchOptions, bar, scenes: list[tuple[int, int]] = ()) -> list[dict]:
    """A CRF sweep, widened until it spans the learned codec's PSNR range ``target`` (or hits the
    codec's CRF limits)."""
    n, h, w, _ = frames.shape
    done: dict[int, dict] = {}

    def measure(crf: int) -> None:
        size, decoded, enc_s, dec_s = run_classical(codec, crf, frames, fps)
        meter = QualityMeter(frames, scenes)
        for s in range(0, n, 32):
            meter.update(decoded[s : s + 32])
        done[crf] = point(codec.encoder, codec.preset, size, n, fps, w, h, meter.result(), n / enc_s, n / dec_s,
                          crf=crf, settings={"pix_fmt": "yuv420p", **codec.options(crf)},
                          ms_ssim_note=ms_ssim_note(h, w))
        bar.update(1)

    for crf in codec.crfs:
        measure(crf)
    lo_crf, hi_crf = codec.crf_range
    for _ in range(opts.extra_sweep_points):
        psnrs = {c: p["psnr"] for c, p in done.items()}
        if max(psnrs.values()) < target[1] and min(done) > lo_crf:
            measure(max(lo_crf, min(done) - 5))
        elif min(psnrs.values()) > target[0] and max(done) < hi_crf:
            measure(min(hi_crf, max(done) + 5))
        else:
            break
    return [done[c] for c in sorted(done)]


# A Bjøntegaard delta through fewer points than this rests on too little of the curve.
MIN_BD_POINTS = 4
LADDER = "ladder"  # the curve of all the benchmarked models together


def bd_table(points: list[dict]) -> list[dict]:
    """BD-rate and BD-PSNR of each learned curve (total accounting first) against each classical
    curve, over every non-dominated point of each, with how many points each curve has. With
    several models, their pooled points are one more curve, the ladder's."""
    curves: dict[tuple, list[dict]] = {}
    for p in sorted(points, key=lambda p: p["accounting"] != "total"):
        key = (p["codec"], p["preset"], p["accounting"], p["model"])
        curves.setdefault(key, []).append(p)
    models = {p["model"] for p in points if p["codec"] == LEARNED}
    if len(models) > 1:  # several models are a preset ladder: its curve is every model's best points
        for p in points:
            if p["codec"] == LEARNED:
                curves.setdefault((LEARNED, None, p["accounting"], LADDER), []).append(p)
    rows = []
    anchors = [k for k in curves if k[0] != LEARNED]
    tests = [k for k in curves if k[0] == LEARNED]
    for a in anchors:
        ar, ap = [p["kbps"] for p in curves[a]], [p["psnr"] for p in curves[a]]
        for t in tests:
            tr, tp = [p["kbps"] for p in curves[t]], [p["psnr"] for p in curves[t]]
            rate, dpsnr = bd_rate(ar, ap, tr, tp), bd_psnr(ar, ap, tr, tp)
            counts = len(rd_hull(ar, ap)[0]), len(rd_hull(tr, tp)[0])
            notes = []
            if rate is None or dpsnr is None:
                notes.append("PSNR or rate ranges do not overlap: no Bjøntegaard delta")
            if min(counts) < MIN_BD_POINTS:
                notes.append(f"warning: a curve has fewer than {MIN_BD_POINTS} non-dominated points")
            rows.append({"anchor": f"{a[0]} {a[1]}", "test": f"{t[0]} {t[3]} ({t[2]})",
                         "bd_rate_percent": rate, "bd_psnr_db": dpsnr,
                         "anchor_points": counts[0], "test_points": counts[1],
                         "note": "; ".join(notes) or None})
    return rows


def sound_kbps(source: str, frames: int, fps: Fraction, kbps_asked: float = DEFAULT_AUDIO_KBPS) -> float | None:
    """What the source's sound over the benchmark's frames costs as latentcast codes it (Opus
    chunks over the latent chunks, at ``kbps_asked``), or None for a silent source. Reported
    apart: the curves compare picture with picture, as the classical codecs run without sound."""
    pcm = audio.read_audio(source, max_seconds=frames / float(fps))
    if pcm is None or not frames:
        return None
    step = chunk_frames_for(fps, DEFAULT_CHUNK_SECONDS)
    _info, payloads = audio.encode_chunks(pcm, audio.chunk_spans(list(range(0, frames, step)), frames, fps),
                                          kbps_asked)
    return kbps(sum(map(len, payloads)), frames, float(fps))


def run_bench(source: str, model_dirs: list[str], out_dir: str | os.PathLike, opts: BenchOptions) -> dict:
    """Run the whole benchmark and write results.json, results.csv and rd.png to ``out_dir``."""
    if not model_dirs:
        raise UsageError("give at least one --model")
    cfgs = [load_config(m) for m in model_dirs]
    size = opts.size or (cfgs[0].width, cfgs[0].height)
    for m, cfg in zip(model_dirs, cfgs):
        if (cfg.width, cfg.height) != size:
            raise UsageError(f"model {m} was trained at {cfg.width}x{cfg.height}, the benchmark runs at "
                             f"{size[0]}x{size[1]}")
    if opts.codecs and (size[0] % 2 or size[1] % 2):
        raise UsageError(f"the classical codecs code 4:2:0 and need an even size, got {size[0]}x{size[1]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames, fps = load_frames(source, size, opts.frames)
    n = len(frames)
    total = len(model_dirs) * len(opts.bits) + sum(len(c.crfs) for c in opts.codecs)
    points: list[dict] = []
    scenes = None  # the first model's, so every codec is judged over the same scenes
    with progress_bar(opts.progress, total=total, desc="benchmark", unit="point", leave=True) as bar:
        for m in model_dirs:
            bar.set_postfix_str(f"latentcast {Path(m).name}")
            learned, scenes = bench_learned(m, frames, fps, out, opts, bar, scenes)
            points += learned
        learned_psnr = [p["psnr"] for p in points]
        target = (min(learned_psnr), max(learned_psnr))
        for codec in opts.codecs:
            bar.set_postfix_str(f"{codec.encoder} {codec.preset}")
            points += bench_classical(codec, frames, fps, target, opts, bar, scenes)
    results = {
        "clip": Path(source).name, "width": size[0], "height": size[1], "frames": n, "fps": float(fps),
        "duration_s": n / float(fps), "y_psnr_standard": Y_PSNR_STANDARD, "points": points,
        "scenes": [list(s) for s in scenes],
        "bd": bd_table(points),
        # the sound, apart from every curve: what it would cost at the default Opus rate
        "audio_kbps": sound_kbps(source, n, fps), "audio_kbps_asked": DEFAULT_AUDIO_KBPS,
    }
    write_results(out, results)
    return results



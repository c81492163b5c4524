"""The rate-distortion benchmark: latentcast against x264, x265 and SVT-AV1 on the same frames.

    source --PyAV, once--> RGB frames at the bench size  (the ground truth for every codec)
      |-- latentcast: encoder -> latents -> container at 2..8 bits -> decoder -> RGB
      |-- classical:  RGB -> yuv420p -> encoder (CRF sweep) -> packets -> decoder -> yuv420p -> RGB
      v
    PSNR / MS-SSIM / Y-PSNR against the ground truth; bitrate from real bytes

Learned bitrates count the container's chunk bytes (``streaming``), and those plus the
zstd-compressed decoder file spread over the clip (``total``). Classical bitrates count the
encoded packets' bytes. Every codec's RGB<->YUV conversion is swscale's, the same for all.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from . import video
from .container import Container
from .errors import UsageError
from .metrics import PSNRMeter, Y_PSNR_STANDARD, bd_psnr, bd_rate, luma, mse_to_psnr, ms_ssim, ms_ssim_scales, \
    to_tensor
from .pipeline import DEFAULT_CHUNK_SECONDS, chunk_frames_for, decode_movie, encode_batches, write_movie
from .progress import progress_bar
from .weights import DECODER, compress_decoder, load_config, load_decoder, load_encoder

log = logging.getLogger(__name__)

LEARNED = "latentcast"
LEARNED_BITS = (2, 3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class ClassicalCodec:
    """One classical configuration: an encoder, its preset, and the CRFs to start the sweep with."""

    key: str
    encoder: str
    decoder: str
    preset: str
    crfs: tuple[int, ...]
    crf_range: tuple[int, int]

    def options(self, crf: int) -> dict[str, str]:
        opts = {"crf": str(crf), "preset": self.preset}
        if self.encoder == "libx265":
            opts["x265-params"] = "log-level=error"
        return opts


CLASSICAL = {
    "x264": [ClassicalCodec("x264", "libx264", "h264", "medium", (23, 28, 33, 38, 43, 48), (0, 51)),
             ClassicalCodec("x264", "libx264", "h264", "veryslow", (23, 28, 33, 38, 43, 48), (0, 51))],
    "x265": [ClassicalCodec("x265", "libx265", "hevc", "medium", (23, 28, 33, 38, 43, 48), (0, 51))],
    "av1": [ClassicalCodec("av1", "libsvtav1", "libdav1d", "8", (30, 38, 45, 52, 58, 63), (1, 63))],
}


def parse_codecs(text: str) -> list[ClassicalCodec]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLASSICAL]
    if unknown:
        raise UsageError(f"unknown codec {unknown[0]!r}; choose from {', '.join(CLASSICAL)}")
    return [c for n in names for c in CLASSICAL[n]]


# -- measuring ---------------------------------------------------------------------------------

@dataclass
class Quality:
    psnr: float
    psnr_mse: float
    y_psnr: float
    ms_ssim: float | None


class QualityMeter:
    """PSNR, luma PSNR and MS-SSIM of decoded frames against the reference, frame by frame."""

    def __init__(self, reference: np.ndarray):
        self.reference = reference
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
                       float(np.mean([min(100.0, mse_to_psnr(m)) for m in self.y])),
                       float(np.mean(self.ssim)) if self.ms_ssim_ok else None)


def ms_ssim_note(height: int, width: int) -> str | None:
    if ms_ssim_scales(height, width) == 5:
        return None
    return f"frames of {width}x{height} are too small for 5-scale MS-SSIM (need at least 176 pixels a side)"


def run_classical(codec: ClassicalCodec, crf: int, frames: np.ndarray, fps: Fraction) -> tuple[int, np.ndarray,
                                                                                               float, float]:
    """Encode RGB frames at one CRF in-process; returns (bytes, decoded RGB, enc s, dec s)."""
    n, h, w, _ = frames.shape
    enc = av.CodecContext.create(codec.encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1) / fps
    enc.framerate = fps
    enc.options = codec.options(crf)
    convert = VideoReformatter()  # keeps its swscale context across frames, as a player would
    t0 = time.perf_counter()
    packets = []
    for i, rgb in enumerate(frames):
        frame = convert.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p")
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    enc_s = time.perf_counter() - t0
    size = sum(p.size for p in packets)
    dec = av.CodecContext.create(codec.decoder, "r")
    t0 = time.perf_counter()
    out = []
    for p in packets:
        out += [convert.reformat(f, format="rgb24").to_ndarray() for f in dec.decode(p)]
    out += [convert.reformat(f, format="rgb24").to_ndarray() for f in dec.decode(None)]
    dec_s = time.perf_counter() - t0
    if len(out) != n:
        raise RuntimeError(f"{codec.encoder} at crf {crf}: decoded {len(out)} of {n} frames")
    return size, np.stack(out), enc_s, dec_s


def point(codec: str, preset: str | None, nbytes: int, n_frames: int, fps: Fraction, w: int, h: int, q: Quality,
          enc_fps: float, dec_fps: float, **extra) -> dict:
    seconds = n_frames / float(fps)
    return {
        "codec": codec, "preset": preset, "crf": None, "bits": None, "accounting": None, "model": None,
        "bytes": nbytes, "kbps": nbytes * 8 / seconds / 1000, "bpp": nbytes * 8 / (w * h * n_frames),
        "psnr": q.psnr, "psnr_mse": q.psnr_mse, "ms_ssim": q.ms_ssim, "y_psnr": q.y_psnr,
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


def load_frames(source: str, size: tuple[int, int], max_frames: int | None) -> tuple[np.ndarray, Fraction]:
    info = video.probe(source)
    frames = np.stack(list(video.read_frames(source, size, max_frames)))
    return frames, info.fps


def bench_learned(model_dir: str, frames: np.ndarray, fps: Fraction, out_dir: Path, opts: BenchOptions,
                  bar) -> list[dict]:
    cfg = load_config(model_dir)
    encoder, decoder = load_encoder(model_dir), load_decoder(model_dir)
    n, h, w, _ = frames.shape
    decoder_file = Path(model_dir) / DECODER
    decoder_bytes = len(compress_decoder(decoder_file.read_bytes()))  # exactly what GetDecoder sends
    name = Path(model_dir).name
    points = []
    with tempfile.TemporaryFile() as spill:
        t0 = time.perf_counter()
        count = encode_batches((frames[s : s + 16] for s in range(0, n, 16)), encoder, spill)
        enc_s = time.perf_counter() - t0
        latents = np.memmap(spill, dtype=np.float32, mode="r", shape=(count, cfg.latent_dim))
        for bits in opts.bits:
            path = out_dir / f"{LEARNED}-{name}-{bits}bit.lcv"
            t0 = time.perf_counter()
            res = write_movie(latents, cfg, fps, path, bits, chunk_frames_for(fps, opts.chunk_seconds),
                              cfg.decoder_sha256)
            write_s = time.perf_counter() - t0
            meter = QualityMeter(frames)
            t0 = time.perf_counter()
            dec_s = 0.0
            with Container(path) as movie:
                it = decode_movie(movie, decoder)
                while True:
                    t1 = time.perf_counter()
                    batch = next(it, None)
                    dec_s += time.perf_counter() - t1
                    if batch is None:
                        break
                    meter.update(batch)
            q = meter.result()
            common = dict(bits=bits, model=name, container=path.name, ms_ssim_note=ms_ssim_note(h, w))
            enc_fps, dec_fps = n / (enc_s + write_s), n / dec_s
            points.append(point(LEARNED, None, res.chunk_bytes, n, fps, w, h, q, enc_fps, dec_fps,
                                accounting="streaming", **common))
            points.append(point(LEARNED, None, res.chunk_bytes + decoder_bytes, n, fps, w, h, q, enc_fps, dec_fps,
                                accounting="total", decoder_bytes=decoder_bytes, **common))
            bar.update(1)
        del latents
    return points


def bench_classical(codec: ClassicalCodec, frames: np.ndarray, fps: Fraction, target: tuple[float, float],
                    opts: BenchOptions, bar) -> list[dict]:
    """A CRF sweep, widened until it spans the learned codec's PSNR range ``target`` (or hits the
    codec's CRF limits)."""
    n, h, w, _ = frames.shape
    done: dict[int, dict] = {}

    def measure(crf: int) -> None:
        size, decoded, enc_s, dec_s = run_classical(codec, crf, frames, fps)
        meter = QualityMeter(frames)
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


def bd_table(points: list[dict]) -> list[dict]:
    """BD-rate and BD-PSNR of each learned curve against each classical curve."""
    curves: dict[tuple, list[dict]] = {}
    for p in points:
        key = (p["codec"], p["preset"], p["accounting"], p["model"])
        curves.setdefault(key, []).append(p)
    rows = []
    anchors = [k for k in curves if k[0] != LEARNED]
    tests = [k for k in curves if k[0] == LEARNED]
    for a in anchors:
        ar, ap = [p["kbps"] for p in curves[a]], [p["psnr"] for p in curves[a]]
        for t in tests:
            tr, tp = [p["kbps"] for p in curves[t]], [p["psnr"] for p in curves[t]]
            rate, dpsnr = bd_rate(ar, ap, tr, tp), bd_psnr(ar, ap, tr, tp)
            rows.append({"anchor": f"{a[0]} {a[1]}", "test": f"{t[0]} {t[3]} ({t[2]})",
                         "bd_rate_percent": rate, "bd_psnr_db": dpsnr,
                         "note": None if rate is not None and dpsnr is not None else
                         "PSNR or rate ranges do not overlap: no Bjøntegaard delta"})
    return rows


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
    with progress_bar(opts.progress, total=total, desc="benchmark", unit="point", leave=True) as bar:
        for m in model_dirs:
            bar.set_postfix_str(f"latentcast {Path(m).name}")
            points += bench_learned(m, frames, fps, out, opts, bar)
        learned_psnr = [p["psnr"] for p in points]
        target = (min(learned_psnr), max(learned_psnr))
        for codec in opts.codecs:
            bar.set_postfix_str(f"{codec.encoder} {codec.preset}")
            points += bench_classical(codec, frames, fps, target, opts, bar)
    results = {
        "clip": Path(source).name, "width": size[0], "height": size[1], "frames": n, "fps": float(fps),
        "duration_s": n / float(fps), "y_psnr_standard": Y_PSNR_STANDARD, "points": points,
        "bd": bd_table(points),
    }
    write_results(out, results)
    return results


# -- outputs -----------------------------------------------------------------------------------

CSV_FIELDS = ["codec", "preset", "crf", "bits", "accounting", "model", "bytes", "kbps", "bpp", "psnr", "psnr_mse",
              "ms_ssim", "y_psnr", "enc_fps", "dec_fps"]


def write_results(out: Path, results: dict) -> None:
    from .atomic import write_text_atomic

    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS + ["clip", "width", "height", "frames", "fps"],
                            extrasaction="ignore")
    writer.writeheader()
    for p in results["points"]:
        writer.writerow({**p, **{k: results[k] for k in ("clip", "width", "height", "frames", "fps")}})
    write_text_atomic(out / "results.csv", buf.getvalue())
    plot([results], out / "rd.png")


def curve_label(p: dict) -> str:
    if p["codec"] == LEARNED:
        return f"latentcast {p['model']} ({p['accounting']})"
    return f"{p['codec']} {p['preset']}"


def plot(runs: list[dict], path: Path, labels: list[str] | None = None) -> None:
    """kbit/s (log) against PSNR, one curve per codec configuration, for one or more runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for r, run in enumerate(runs):
        curves: dict[str, list[dict]] = {}
        for p in run["points"]:
            curves.setdefault(curve_label(p), []).append(p)
        prefix = f"{labels[r]}: " if labels and len(runs) > 1 else ""
        for label, pts in curves.items():
            pts = sorted(pts, key=lambda p: p["kbps"])
            learned = pts[0]["codec"] == LEARNED
            style = "-o" if learned else "--s"
            if learned and pts[0]["accounting"] == "total":
                style = ":o"
            ax.plot([p["kbps"] for p in pts], [p["psnr"] for p in pts], style, markersize=4, label=prefix + label)
    ax.set_xscale("log")
    ax.set_xlabel("bitrate (kbit/s, log scale)")
    ax.set_ylabel("PSNR (dB, RGB, mean over frames)")
    first = runs[0]
    ax.set_title(f"{first['clip']} at {first['width']}x{first['height']}, {first['frames']} frames")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def markdown(results: dict) -> str:
    """The points and the BD table as markdown."""
    def f(v, spec):
        return "" if v is None else format(v, spec)

    lines = [f"{results['clip']}: {results['width']}x{results['height']}, {results['frames']} frames at "
             f"{results['fps']:g} fps", "",
             "| codec | preset | crf/bits | accounting | kbit/s | bpp | PSNR | PSNR(MSE) | MS-SSIM | Y-PSNR | enc fps "
             "| dec fps |", "|" + "---|" * 12]
    for p in sorted(results["points"], key=lambda p: (p["codec"] != LEARNED, curve_label(p), p["kbps"])):
        knob = f"crf {p['crf']}" if p["crf"] is not None else f"{p['bits']} bits"
        codec = p["codec"] if p["codec"] != LEARNED else f"latentcast {p['model']}"
        lines.append(f"| {codec} | {p['preset'] or ''} | {knob} | {p['accounting'] or ''} | {p['kbps']:.1f} | "
                     f"{p['bpp']:.4f} | {p['psnr']:.2f} | {p['psnr_mse']:.2f} | {f(p['ms_ssim'], '.4f')} | "
                     f"{p['y_psnr']:.2f} | {p['enc_fps']:.1f} | {p['dec_fps']:.1f} |")
    if results.get("bd"):
        lines += ["", "| anchor | test | BD-rate | BD-PSNR |", "|---|---|---|---|"]
        for row in results["bd"]:
            rate = f"{row['bd_rate_percent']:+.1f}%" if row["bd_rate_percent"] is not None else "no overlap"
            dp = f"{row['bd_psnr_db']:+.2f} dB" if row["bd_psnr_db"] is not None else "no overlap"
            lines.append(f"| {row['anchor']} | {row['test']} | {rate} | {dp} |")
    return "\n".join(lines)

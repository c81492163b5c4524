"""Decode speed end to end, as a viewer runs it: ``latentcast decode MOVIE -o - > /dev/null``
(YUV4MPEG2 out), with the torch and ONNX Runtime paths side by side in one run.

    python benchmarks/decode_speed.py [--sizes 320x180,1280x720,1920x1080] [--frames 130] [--rounds 2]
                                      [--capacity large] [--heads shuffle,dwshuffle] [--model MODEL_DIR ...]
                                      [--runtimes torch,onnx,torch-bf16]

For each size it plans the default architecture (``CodecConfig.plan``), writes a model dir with
freshly initialised weights (speed does not depend on their values) and a movie of ``--frames``
random latents, then runs the decode command for each runtime in turn, ``--rounds`` times,
alternating. The figure is the command's own decode loop (container read, decode, y4m write)
after its first frame, the rate playback runs at; in brackets, the first frame's own time (the
runtime's import and the decoder's build, paid once) in the best round. ``--model`` adds
trained model dirs (a movie of random latents for each). The ratios are onnx over torch and
torch-bf16 over onnx frames/s, in the same run. ``--sizes ''`` times only the ``--model`` dirs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from latentcast.codec.format.container import write_latents
from latentcast.codec.nn.config import CodecConfig, load_config
from latentcast.codec.nn.model import build_model, macs_per_pixel
from latentcast.codec.nn.weights import save_model


def _fresh_model(size: tuple[int, int], capacity: str, out: Path, head: str = "shuffle") -> Path:
    torch.manual_seed(0)
    save_model(build_model(CodecConfig.plan(*size, capacity=capacity, head=head)), out)
    return out


def _movie(model_dir: Path, frames: int, out: Path) -> Path:
    cfg = load_config(model_dir)
    z = np.random.default_rng(0).normal(size=(frames, cfg.latent_dim)).astype(np.float32)
    write_latents(z, (cfg.width, cfg.height), Fraction(25), out, 6, 25, cfg.decoder_sha256)
    return out


def _decode_fps(movie: Path, model_dir: Path, runtime: str) -> tuple[float, float]:
    """Frames/s after the first frame, and the first frame's time in ms (the runtime's import
    and the decoder's build, which playback pays once)."""
    cmd = [sys.executable, "-m", "latentcast.cli", "decode", str(movie), "--model", str(model_dir),
           "-o", "-", "--format", "y4m",
           "--runtime", runtime, "-q"]
    with open(os.devnull, "wb") as sink:
        done = subprocess.run(cmd, stdout=sink, stderr=subprocess.PIPE, text=True, check=False)
    m = re.search(r"first frame after (\d+) ms, then ([\d.]+) frames/s", done.stderr)
    if done.returncode or not m:
        raise SystemExit(f"decode failed: {done.stderr.strip()[-300:]}")
    return float(m.group(2)), float(m.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="320x180,1280x720,1920x1080")
    p.add_argument("--capacity", default="large", help="decoder rung for the planned models (default large)")
    p.add_argument("--heads", default="shuffle", help="decoder heads of the planned models, comma-separated "
                   "(shuffle, dwshuffle; default shuffle)")
    p.add_argument("--model", nargs="*", default=[], help="trained model dirs to time as well")
    p.add_argument("--frames", type=int, default=130)
    p.add_argument("--rounds", type=int, default=2, help="alternating runs per runtime (default 2; best kept)")
    p.add_argument("--runtimes", default="torch,onnx,torch-bf16")
    args = p.parse_args()
    runtimes = args.runtimes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        models = [_fresh_model(tuple(map(int, s.split("x"))), args.capacity, Path(tmp) / f"{head}-{s}", head)
                  for s in args.sizes.split(",") if s for head in args.heads.split(",")]
        models += [Path(m) for m in args.model]
        print(f"{os.cpu_count()} CPUs; {args.frames} frames; best of {args.rounds} alternating rounds")
        ratios = [(a, b) for a, b in (("onnx", "torch"), ("torch-bf16", "onnx")) if {a, b} <= set(runtimes)]
        print("| model | size | MACs/pixel | " + " | ".join(f"{r} frames/s (first frame)" for r in runtimes)
              + "".join(f" | {a} / {b}" for a, b in ratios) + " |")
        print("|---|---|---:|" + "---:|" * (len(runtimes) + len(ratios)))
        for model_dir in models:
            cfg = load_config(model_dir)
            movie = _movie(model_dir, args.frames, Path(tmp) / f"{model_dir.name}.lcv")
            best = dict.fromkeys(runtimes, (0.0, 0.0))
            for _ in range(args.rounds):
                for r in runtimes:
                    best[r] = max(best[r], _decode_fps(movie, model_dir, r))
            macs = macs_per_pixel(build_model(cfg).decoder)
            print(f"| {model_dir.name} | {cfg.width}x{cfg.height} | {macs:,.0f} | "
                  + " | ".join(f"{best[r][0]:.1f} ({best[r][1]:.0f} ms)" for r in runtimes)
                  + "".join(f" | {best[a][0] / best[b][0]:.2f}" for a, b in ratios) + " |", flush=True)


if __name__ == "__main__":
    main()

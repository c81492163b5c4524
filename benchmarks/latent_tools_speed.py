"""What the latent tools cost on a long movie, against decoding its frames.

    python benchmarks/latent_tools_speed.py [--hours 2] [--fps 24] [--decode-frames 480]

Writes a container of ``--hours`` of generated latents at 320x180 (shots of 2-8 s: a random walk
inside each, a jump at each cut; 3 bits, 1-second chunks) for a freshly initialised model of
the default architecture, then times, in one process and one run:

- reading every latent from the container (what scenes and inspect start from);
- finding cuts and scenes on them (codec.scenes, the `scenes` command's work with options);
- the 8 nearest frames to one frame (codec.explore.similar: two streaming passes);
- decoding ``--decode-frames`` frames with the viewer's runtime, extrapolated to the whole movie.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from latentcast.codec import scenes as sc
from latentcast.codec.explore.latents import all_latents
from latentcast.codec.explore.similar import nearest
from latentcast.codec.format.container import Container, write_latents
from latentcast.codec.nn.config import CodecConfig, load_config
from latentcast.codec.nn.model import build_model
from latentcast.codec.nn.weights import save_model
from latentcast.codec.runtime.decode import decode_movie
from latentcast.codec.runtime.scene_decoders import model_decoders


def generated_latents(frames: int, dim: int, fps: float, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Shots of 2-8 s: each a random walk from its own random start; returns (latents, cuts)."""
    z = np.empty((frames, dim), np.float32)
    cuts, at = [], 0
    while at < frames:
        n = min(frames - at, int(rng.uniform(2, 8) * fps))
        steps = rng.normal(scale=0.05, size=(n, dim)).astype(np.float32)
        z[at : at + n] = rng.normal(size=dim).astype(np.float32) + np.cumsum(steps, axis=0)
        at += n
        if at < frames:
            cuts.append(at)
    return z, cuts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--decode-frames", type=int, default=480)
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        torch.manual_seed(0)
        save_model(build_model(CodecConfig.plan(320, 180)), model)
        cfg = load_config(model)
        frames = int(args.hours * 3600 * args.fps)
        t = time.perf_counter()
        z, cuts = generated_latents(frames, cfg.latent_dim, args.fps, np.random.default_rng(0))
        movie = Path(tmp) / "long.lcv"
        res = write_latents(z, (320, 180), Fraction(args.fps), movie, 3, args.fps, cfg.decoder_sha256)
        del z
        print(f"{frames:,} frames ({args.hours:g} h at {args.fps} fps), {len(cuts):,} cuts; container "
              f"{res.bytes / 1e6:.1f} MB, written in {time.perf_counter() - t:.0f} s")
        rows = []
        with Container(movie) as c:
            t = time.perf_counter()
            latents = all_latents(c)
            rows.append(("read every latent", time.perf_counter() - t))
            t = time.perf_counter()
            found, chapters = sc.chapters(latents, float(args.fps), 5.0)  # quantized codes: a lower sensitivity
            rows.append((f"cuts and scenes ({len(found):,} cuts, {len(chapters):,} scenes)", time.perf_counter() - t))
            del latents
            t = time.perf_counter()
            nearest(c, frames // 2, 8)
            rows.append(("8 nearest frames to one frame", time.perf_counter() - t))
            decoders = model_decoders(model)
            t = time.perf_counter()
            n = sum(len(b) for b in decode_movie(c, decoders, 0, args.decode_frames))
            per_frame = (time.perf_counter() - t) / n
            decoders.close()
        hits = len(set(found) & set(cuts)) if found else 0
        print(f"cuts found that are real (exactly): {hits:,} of {len(found):,}; real cuts found: {hits:,} of "
              f"{len(cuts):,}")
        decode_all = per_frame * frames
        print(f"\n| step | seconds | against decoding every frame ({decode_all:,.0f} s) |\n|---|---:|---:|")
        for name, secs in rows:
            print(f"| {name} | {secs:.1f} | {decode_all / secs:,.0f}x faster |")
        print(f"| decoding every frame ({1 / per_frame:.0f} frames/s over {n} frames, extrapolated) | "
              f"{decode_all:,.0f} | 1x |")


if __name__ == "__main__":
    main()

"""What encode-time refinement (codec.nn.refine) buys and costs: for each step count, the
encode's wall time, its streaming rate and total rate (every byte, the decoder counted), and
the decoded PSNR, all in one process so the times compare (the machine is shared).

    python benchmarks/latent_refinement.py VIDEO --model MODEL_DIR [--steps 0,10,30,60] [--bits 3]

The times are the whole `latentcast.encode` (encoder, scene cuts, refinement, chunk coding),
without sound; the 0-step row is the baseline each ratio is taken against.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import latentcast
from latentcast.codec.format.container import Container
from latentcast.codec.format.rates import kbps
from latentcast.codec.nn.config import load_config
from latentcast.codec.quality import PSNRMeter
from latentcast.codec.runtime.decode import decode_movie
from latentcast.codec.runtime.download_size import model_download_bytes
from latentcast.codec.runtime.scene_decoders import model_decoders
from latentcast.codec.video import read_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video")
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", default="0,10,30,60")
    ap.add_argument("--bits", type=int)
    args = ap.parse_args()
    cfg = load_config(args.model)
    reference = np.stack(list(read_frames(args.video, (cfg.width, cfg.height))))
    print("| refine steps | encode s | against 0 steps | streaming kbit/s | total kbit/s | PSNR dB |")
    print("|---:|---:|---:|---:|---:|---:|")
    base_s = None
    with tempfile.TemporaryDirectory() as tmp:
        for steps in [int(s) for s in args.steps.split(",")]:
            out = Path(tmp) / f"r{steps}.lcv"
            t0 = time.perf_counter()
            res = latentcast.encode(args.video, args.model, out, bits=args.bits, refine_steps=steps, audio_kbps=None)
            seconds = time.perf_counter() - t0
            base_s = seconds if base_s is None else base_s
            meter = PSNRMeter()
            with Container(out) as c:
                parts = c.header.parts
                at = 0
                for frames in decode_movie(c, model_decoders(args.model, parts)):
                    meter.update(reference[at : at + len(frames)], frames)
                    at += len(frames)
            total = res.streaming_bytes + model_download_bytes(args.model, parts)
            fps = float(res.fps)
            print(f"| {steps} | {seconds:.1f} | {seconds / base_s:.2f}x | {kbps(res.streaming_bytes, res.frames, fps):.2f} "
                  f"| {kbps(total, res.frames, fps):.2f} | {meter.psnr:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""What decoding in reduced precision costs one trained model: PSNR against the source with the
decoder in fp32, bf16 and fp16 autocast, and how far bf16's pixels sit from fp32's.

    python benchmarks/precision_loss.py MODEL_DIR VIDEO [--frames 280]

It encodes the first ``--frames`` frames of VIDEO with the model (as ``latentcast encode`` does),
decodes every frame in each precision with the torch decoder, one frame a call as the player
does, and prints a table. The trainer records the bf16 figure in ``config.json``
(``bf16_loss_db``), which ``--runtime auto`` reads.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import latentcast
from latentcast.codec.format.container import Container
from latentcast.codec.format.decoder_state import load_state_verified
from latentcast.codec.nn.config import DECODER, load_config, read_model_file
from latentcast.codec.nn.tensors import to_uint8
from latentcast.codec.nn.weights import decoder_from_state
from latentcast.codec.quality import PSNRMeter
from latentcast.codec.video import read_frames

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    meter = PSNRMeter()
    meter.update(reference, frames)
    return meter.psnr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("video")
    p.add_argument("--frames", type=int, default=280)
    args = p.parse_args()
    cfg = load_config(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        movie = Path(tmp) / "m.lcv"
        latentcast.encode(args.video, args.model, movie, max_frames=args.frames)
        with Container(movie) as c:
            z = np.concatenate([latents for _, latents in c.iter_latents()])
    source = np.stack(list(read_frames(args.video, (cfg.width, cfg.height), len(z))))
    state = load_state_verified(read_model_file(args.model / DECODER), cfg.decoder_sha256, str(args.model))
    decoder = decoder_from_state(state, cfg, str(args.model))
    decoded = {}
    for name, dtype in PRECISIONS.items():
        with torch.inference_mode(), torch.autocast("cpu", dtype or torch.bfloat16, enabled=dtype is not None):
            decoded[name] = np.concatenate([to_uint8(decoder(torch.from_numpy(z[i : i + 1]))) for i in range(len(z))])
    fp32 = decoded["fp32"]
    print(f"{args.model} ({cfg.width}x{cfg.height}), {len(z)} frames")
    print("| precision | PSNR dB | loss dB | against fp32's pixels | max levels off | values that differ |")
    print("|---|---:|---:|---:|---:|---:|")
    base = _psnr(fp32, source)
    for name, frames in decoded.items():
        off = np.abs(frames.astype(int) - fp32)
        against = "-" if name == "fp32" else f"{_psnr(frames, fp32):.1f} dB"
        print(f"| {name} | {_psnr(frames, source):.4f} | {base - _psnr(frames, source):.4f} | {against} | "
              f"{off.max()} | {100 * (off > 0).mean():.1f} % |")


if __name__ == "__main__":
    main()

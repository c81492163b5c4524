"""What the low-bit decoder file costs: bytes against fp32, and PSNR against the float weights.

    python benchmarks/decoder_size.py MODEL_DIR VIDEO [--bits 4 5 6 7 8] [--frames 280]

The float weights come from the model's final checkpoint (``checkpoint/state.safetensors``,
the weights training ended with). The first row is the file as shipped, with the per-layer
widths training chose and fine-tuned for; then, for each uniform bit width, the script
quantizes the same weights as the shipped file does. Each row codes the file as it
travels and decodes the video's frames (float latents from the model's encoder) with the float
and the quantized weights. The uniform rows show what re-quantizing without fine-tuning costs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load as st_load
from safetensors.torch import load_file

from latentcast.codec import video
from latentcast.codec.format.decoder_file import compress_decoder
from latentcast.codec.nn.config import load_config
from latentcast.codec.nn.model import build_model, count_parameters
from latentcast.codec.nn.tensors import to_tensor, to_uint8
from latentcast.codec.nn.weights import int8_state_bytes, load_state_into, shipped_widths, state_to_bytes
from latentcast.codec.quality import PSNRMeter


@torch.inference_mode()
def psnr(decoder: torch.nn.Module, latents: torch.Tensor, frames: np.ndarray) -> float:
    meter = PSNRMeter()
    for s in range(len(frames)):
        meter.update(frames[s : s + 1], to_uint8(decoder(latents[s : s + 1])))
    return meter.psnr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("video")
    p.add_argument("--bits", type=int, nargs="+", default=[4, 5, 6, 7, 8])
    p.add_argument("--frames", type=int, default=280)
    args = p.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.model)
    model = build_model(cfg).eval()
    ck = load_file(str(Path(args.model) / "checkpoint" / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in ck.items() if k.startswith("model.")})
    frames = np.concatenate(list(video.read_batches(args.video, (cfg.width, cfg.height), 32, args.frames)))
    with torch.inference_mode():
        latents = torch.cat([model.encoder(to_tensor(frames[s : s + 32])) for s in range(0, len(frames), 32)])
    fp32 = len(state_to_bytes(model.decoder))
    n = count_parameters(model.decoder)
    base = psnr(model.decoder, latents, frames)
    trained = shipped_widths(model.decoder)
    print(f"{cfg.width}x{cfg.height}, {n:,} decoder params, fp32 file {fp32:,} bytes; trained for "
          f"{trained}; float weights {base:.2f} dB on {len(frames)} frames")
    print("| weight bits | file bytes | bytes sent | % of fp32 | bits/weight | PSNR | change |")
    print("|---|---|---|---|---|---|---|")
    for label, bits in [("as trained", trained)] + [(str(b), b) for b in args.bits]:
        data = int8_state_bytes(model.decoder, bits)
        sent = len(compress_decoder(data))
        dec = build_model(cfg).decoder.eval()
        load_state_into(dec, st_load(data), "decoder")
        q = psnr(dec, latents, frames)
        print(f"| {label} | {len(data):,} | {sent:,} | {100 * sent / fp32:.1f} % | {8 * sent / n:.2f} | "
              f"{q:.2f} | {q - base:+.2f} dB |")


if __name__ == "__main__":
    main()

"""Raw decoder speed of a trained model on this machine's CPU (or GPU), at batch 1 and 16.

    python benchmarks/decode_speed.py MODEL_DIR [--seconds 8] [--threads 2] [--device cpu] [--contiguous]

Times only the network (latents in, float frames out), as the player runs it; the end-to-end
figure, with container reading and video writing, is the wall time of `latentcast decode`.
"""

from __future__ import annotations

import argparse
import time

import torch

from latentcast.codec.nn.model import count_parameters, macs_per_pixel
from latentcast.codec.nn.weights import load_decoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--seconds", type=float, default=8.0, help="time per batch size (default 8)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--contiguous", action="store_true",
                   help="run the weights in the plain NCHW layout instead of channels-last (the old path)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dec = load_decoder(args.model).to(args.device)
    if args.contiguous:
        dec = dec.to(memory_format=torch.contiguous_format)
    cfg = dec.cfg
    layout = "contiguous" if args.contiguous else "channels-last"
    print(f"{cfg.width}x{cfg.height}, {count_parameters(dec):,} params, {macs_per_pixel(dec):,.0f} MACs/pixel, {layout}")
    z = torch.randn(64, cfg.latent_dim, device=args.device)
    with torch.inference_mode():
        for batch in (1, 16):
            dec(z[:batch])  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                for s in range(0, 64, batch):
                    dec(z[s : s + batch])
                    n += batch
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            print(f"batch {batch:>2}: {n / (time.perf_counter() - t0):.1f} frames/s")


if __name__ == "__main__":
    main()

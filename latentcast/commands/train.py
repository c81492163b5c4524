"""latentcast train VIDEO -o MODEL_DIR"""

from __future__ import annotations

import sys

from latentcast.codec.format.quantizer import DEFAULT_BITS
from latentcast.codec.nn.config import MAX_WEIGHT_BITS, MIN_WEIGHT_BITS
from latentcast.codec.train.weight_budget import DEFAULT_WEIGHT_BUDGET
from latentcast.codec.video import parse_size

from ._common import command, parser

EPILOG = """\
The model dir gets config.json, encoder.safetensors, decoder.safetensors (weight codes of 4-8
bits with per-channel scales: the file clients download, zstd-coded on the wire; its sha256 is
in config.json) and train_log.jsonl. A checkpoint is written
every --checkpoint-every seconds; after a crash or Ctrl-C, run the same command with --resume.

Multi-GPU or multi-node: torchrun --nproc_per_node=N -m latentcast train VIDEO -o DIR ...

examples:
  latentcast train movie.mp4 --size 320x180 --minutes 10 -o models/movie
  latentcast train movie.mp4 --epochs 50 --latent-dim 256 -o models/small
"""


def build_parser():
    p = parser("train", "Fit a conv autoencoder to the frames of one video (per-video fitting).", EPILOG)
    p.add_argument("video", help="input video (anything ffmpeg decodes)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="where the model is written")
    p.add_argument("--size", metavar="WxH", help="train at this frame size (default: the video's own)")
    p.add_argument("--latent-dim", type=int, default=512, help="latent values per frame (default 512); "
                   "fewer means fewer bits per frame and lower quality")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="wall-clock training budget (default 5)")
    budget.add_argument("--epochs", type=int, help="train for this many passes over the frames instead")
    p.add_argument("--batch-size", type=int, default=2,
                   help="frames per step (default 2). Bigger batches see more frames per second but make fewer "
                        "updates: on the sample, 4 gained 0.4 dB in a 10-minute run and lost in 2-minute ones; "
                        "on a 36-frame clip it lost in both")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--warmup", type=float, default=0.05,
                   help="fraction of the budget spent warming the learning rate up (default 0.05); "
                        "then it decays on a cosine to 2%% of the peak")
    p.add_argument("--bits", type=int, default=DEFAULT_BITS,
                   help=f"latent bit width the final quantization-aware phase trains for, and the width encode "
                        f"and ingest use with this model unless told otherwise; the rate knob (default {DEFAULT_BITS}). "
                        "Each width up costs about 40%% more latent bytes: on the clips measured, a model trained "
                        "for 4 bits scored 0.0-0.7 dB more than one for 3, and past 4 the quality is the model's")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--weight-budget", type=float, default=DEFAULT_WEIGHT_BUDGET, metavar="BITS",
                         help=f"size of the decoder clients download, in bits per weight after zstd (default "
                              f"{DEFAULT_WEIGHT_BUDGET:g}, {100 * DEFAULT_WEIGHT_BUDGET / 32:.1f}%% of the fp32 "
                              "weights). Each layer gets the code width (4-8 bits, in quarters) that loses least "
                              "within it, measured when the quantization-aware phase starts, which then "
                              "fine-tunes at those widths. Smaller: a smaller download, a little less PSNR")
    weights.add_argument("--weight-bits", type=int,
                         help=f"one code width for every decoder layer instead of a budget ({MIN_WEIGHT_BITS}-"
                              f"{MAX_WEIGHT_BITS}); on the clip measured, 6 bits everywhere downloads 14%% more "
                              "than the default budget and loses 0.35 dB where the budget lost none")
    p.add_argument("--qat-fraction", type=float, default=0.15,
                   help="fraction of the budget at the end that freezes the encoder and fine-tunes the decoder "
                        "on quantized latents and weights; the decoder shipped is its weights' average over "
                        "that phase (default 0.15; 0 ships the float-trained model)")
    p.add_argument("--noise-from", type=float, default=0.1, metavar="FRACTION",
                   help="fraction of the budget after which the latents reach the decoder with uniform noise "
                        "one quantizer step wide at --bits, so the encoder learns a code that survives rounding "
                        "(default 0.1; 1 turns it off). On the clips measured it gained 0.2-0.4 dB at 4 bits "
                        "for under 1%% more bytes")
    p.add_argument("--ms-ssim", type=float, default=0.0, metavar="W",
                   help="weight of (1 - MS-SSIM) in the loss, mixed with MSE (default 0: pure MSE)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="checkpoint interval (default 60 s)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in MODEL_DIR")
    p.add_argument("--max-frames", type=int, help="use only the first N frames of the video")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: CUDA if present, else MPS, else CPU)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="arithmetic for training steps. bf16 autocast runs about 1.2-1.5x the steps of fp32 "
                        "where the hardware has bf16 units (AMX/AVX512-BF16 CPUs, recent GPUs), but is slow "
                        "where it is emulated. auto (default) picks bf16 only where it is native. "
                        "Evaluation and the shipped model are fp32 either way")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


@command("train")
def main(argv: list[str]) -> int:
    from latentcast.codec.train.loop import train
    from latentcast.codec.train.options import TrainOptions

    args = build_parser().parse_args(argv)
    opts = TrainOptions(
        size=parse_size(args.size), latent_dim=args.latent_dim,
        minutes=args.minutes if args.epochs is None else None, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, qat_fraction=args.qat_fraction,
        noise_from=args.noise_from,
        bits=args.bits, weight_bits=args.weight_bits, weight_budget=args.weight_budget, ms_ssim_weight=args.ms_ssim,
        seed=args.seed, checkpoint_seconds=args.checkpoint_every,
        max_frames=args.max_frames, device=args.device, threads=args.threads, precision=args.precision, progress=not args.quiet,
    )
    if opts.minutes is None and opts.epochs is None:
        opts.minutes = 5.0
    summary = train(args.video, args.output, opts, resume=args.resume)
    if summary:
        print(f"trained {summary['width']}x{summary['height']} on {summary['frames']} frames: "
              f"{summary['steps']} steps in {summary['seconds']:.0f} s; PSNR {summary['psnr_float']:.2f} dB "
              f"(float), {summary['psnr_quantized']:.2f} dB at {summary['qat_bits']} bits; decoder "
              f"{summary['decoder_params']:,} params, {summary['decoder_bytes_sent']:,} bytes to download "
              f"({summary['decoder_bits_per_weight']:.2f} bits/weight), "
              f"{summary['decoder_macs_per_pixel']:,} MACs/pixel",
              file=sys.stderr)
        print(args.output)
    return 0

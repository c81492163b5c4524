"""latentcast train VIDEO -o MODEL_DIR"""

from __future__ import annotations

import sys

from ._common import add_dataclass_options, command, dataclass_options, parser

EPILOG = """\
The model dir gets config.json, encoder.safetensors, decoder.safetensors (weight codes of 2-8
bits with per-channel scales: the file clients download, entropy-coded on the wire; its sha256 is
in config.json), preview.png (source frames above their reconstructions) and train_log.jsonl.
A checkpoint is written every --checkpoint-every seconds; after a crash or Ctrl-C, run the same
command with --resume.

Multi-GPU or multi-node: torchrun --nproc_per_node=N -m latentcast train VIDEO -o DIR ...

examples:
  latentcast train movie.mp4 --size 320x180 --minutes 10 -o models/movie
  latentcast train movie.mp4 --epochs 50 --latent-dim 256 -o models/small
  latentcast train movie.mp4 --seconds-per-second 20 --preset huge -o models/top   # a rung of the ladder
"""


def build_parser():
    from latentcast.codec.train.options import TrainOptions

    p = parser("train", "Fit a conv autoencoder to the frames of one video (per-video fitting).", EPILOG)
    p.add_argument("video", help="input video (anything ffmpeg decodes)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="where the model is written")
    add_dataclass_options(p, TrainOptions)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in MODEL_DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


@command("train")
def main(argv: list[str]) -> int:
    import latentcast
    from latentcast.codec.train.options import TrainOptions

    args = build_parser().parse_args(argv)
    summary = latentcast.train(args.video, args.output, resume=args.resume, progress=not args.quiet,
                               **dataclass_options(TrainOptions, args))
    if summary:
        print(f"trained {summary['width']}x{summary['height']} on {summary['frames']} frames: "
              f"{summary['steps']} steps of {summary['batch_size']} frames in {summary['seconds']:.0f} s on "
              f"{summary['hardware']} "
              f"(then {summary['evaluation_seconds']:.0f} s measuring it); PSNR {summary['psnr_float']:.2f} dB "
              f"(float), {summary['psnr_quantized']:.2f} dB at {summary['qat_bits']} bits; "
              f"{summary['capacity']} decoder "
              f"{summary['decoder_params']:,} params, {summary['decoder_bytes_sent']:,} bytes to download "
              f"({summary['decoder_bits_per_weight']:.2f} bits/weight), "
              f"{summary['decoder_macs_per_pixel']:,} MACs/pixel",
              file=sys.stderr)
        print(args.output)
    return 0

"""latentcast encode VIDEO --model MODEL_DIR -o MOVIE.lcv"""

from __future__ import annotations

import sys

from latentcast.codec.video import parse_size

from ._common import add_coding_args, audio_kbps, command, parser


def build_parser():
    p = parser("encode", "Encode a video into a .lcv container: quantized latents, chunked and zstd-coded.",
               "example:\n  latentcast encode movie.mp4 --model models/movie --bits 6 -o movie.lcv")
    p.add_argument("video", help="input video")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="a trained model dir")
    p.add_argument("-o", "--output", required=True, metavar="MOVIE.lcv", help="container to write")
    add_coding_args(p)
    p.add_argument("--size", metavar="WxH", help="check that frames are coded at this size (must be the model's)")
    p.add_argument("--max-frames", type=int, help="encode only the first N frames")
    p.add_argument("--batch-size", type=int, default=16, help="frames per encoder batch (default 16)")
    p.add_argument("--no-parts", action="store_true",
                   help="decode with the base decoder alone, though the model has scene parts (fewer decoder "
                        "bytes, lower quality; needed for a video other than the one the parts were fit to)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


@command("encode")
def main(argv: list[str]) -> int:
    import latentcast
    from latentcast.codec.format.quantizer import check_bits, check_refine_steps
    from latentcast.codec.format.rates import kbps
    from latentcast.codec.nn.config import load_config
    from latentcast.codec.nn.encode import check_size_fits

    args = build_parser().parse_args(argv)
    if args.bits is not None:
        check_bits(args.bits)
    check_refine_steps(args.refine_steps)
    cfg = load_config(args.model)
    size = parse_size(args.size)
    if size:
        check_size_fits(*size, cfg.width, cfg.height, "--size")
    res = latentcast.encode(args.video, args.model, args.output, bits=args.bits, chunk_seconds=args.chunk_seconds,
                            batch=args.batch_size, max_frames=args.max_frames, parts=not args.no_parts,
                            progress=not args.quiet, audio_kbps=audio_kbps(args), refine_steps=args.refine_steps)
    print(f"encoded {res.frames} frames at {cfg.width}x{cfg.height}, {res.bits} bits: {res.bytes:,} bytes, "
          f"streaming {kbps(res.streaming_bytes, res.frames, float(res.fps)):.1f} kbit/s (side information and "
          f"chunks; `latentcast info --model` adds the decoder for the total)"
          + (f"; sound {kbps(res.audio_bytes, res.frames, float(res.fps)):.1f} kbit/s apart" if res.audio_bytes
             else "; no sound"), file=sys.stderr)
    print(res.path)
    return 0

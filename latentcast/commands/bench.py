"""latentcast bench VIDEO --model MODEL_DIR -o RESULTS_DIR"""

from __future__ import annotations

import json
import sys

from ._common import add_refine_arg, command, parser

EPILOG = """\
The source is decoded once at the benchmark size; those RGB frames are the ground truth for
every codec. latentcast is measured at 2..8 latent bits per model; x264 (medium, veryslow),
x265 (medium) and SVT-AV1 (preset 8) run CRF sweeps, widened until they span latentcast's
PSNR range. Bitrates come from real bytes: the container's chunks ('streaming'), plus the
entropy-coded decoder download spread over the clip ('total'), and the classical codecs' packets.

Writes RESULTS_DIR/results.json, results.csv, rd.png (and the .lcv files), and prints a
markdown table with BD-rate and BD-PSNR of latentcast against each classical codec.

examples:
  latentcast bench clip.mp4 --model models/clip -o results/clip
  latentcast bench clip.mp4 --model models/a --model models/b --codecs x264 --frames 100 -o results/ab
  latentcast bench --plot results/clip results/other -o overlay.png
"""


def build_parser():
    p = parser("bench", "Rate-distortion benchmark: bitrate against PSNR, latentcast beside x264, x265 and AV1.",
               EPILOG)
    p.add_argument("video", nargs="?", help="source video")
    p.add_argument("--model", action="append", default=[], metavar="MODEL_DIR",
                   help="a trained model (repeatable: one curve each)")
    p.add_argument("-o", "--output", metavar="RESULTS_DIR",
                   help="where results go (with --plot: the PNG to write, default rd-overlay.png)")
    p.add_argument("--size", metavar="WxH", help="benchmark size (default and only choice: the models' size)")
    p.add_argument("--frames", type=int, metavar="N", help="use the first N frames (default: all)")
    p.add_argument("--codecs", default="x264,x265,av1",
                   help="classical codecs to compare, from x264,x265,av1 (default all; '' for none)")
    p.add_argument("--bits", default="2,3,4,5,6,7,8", help="latentcast bit widths (default 2..8)")
    add_refine_arg(p)
    p.add_argument("--plot", nargs="+", metavar="RESULTS_DIR", help="only overlay earlier runs in one plot")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


@command("bench")
def main(argv: list[str]) -> int:
    from pathlib import Path

    from latentcast.codec.eval.bench import BenchOptions, run_bench
    from latentcast.codec.eval.classical import parse_codecs
    from latentcast.codec.eval.report import markdown, plot
    from latentcast.codec.extras import require_extra, require_torch
    from latentcast.codec.format.errors import UsageError
    from latentcast.codec.format.quantizer import check_bits, check_refine_steps
    from latentcast.codec.video import parse_size

    args = build_parser().parse_args(argv)
    require_torch("bench")
    require_extra("matplotlib", "plot", "bench")  # asked before a long run, not after it
    if args.plot:
        runs = []
        for d in args.plot:
            try:
                runs.append(json.loads((Path(d) / "results.json").read_text()))
            except FileNotFoundError:
                raise UsageError(f"{d}: no results.json (run latentcast bench first)") from None
            except ValueError:
                raise UsageError(f"{d}/results.json is not valid JSON") from None
        out = Path(args.output or "rd-overlay.png")
        plot(runs, out, labels=[Path(d).name for d in args.plot])
        print(out)
        return 0
    if not args.video or not args.model or not args.output:
        raise UsageError("give VIDEO, at least one --model and -o RESULTS_DIR (or --plot DIRS)")
    try:
        bits = tuple(sorted({check_bits(int(b)) for b in args.bits.split(",") if b.strip()}))
    except ValueError:
        raise UsageError(f"--bits takes numbers like 2,4,6, got {args.bits!r}") from None
    if args.frames is not None and args.frames <= 0:
        raise UsageError("--frames must be positive")
    opts = BenchOptions(size=parse_size(args.size), frames=args.frames, codecs=parse_codecs(args.codecs),
                        bits=bits, progress=not args.quiet, refine_steps=check_refine_steps(args.refine_steps))
    results = run_bench(args.video, args.model, args.output, opts)
    print(markdown(results))
    print(f"\nwrote {args.output}/results.json, results.csv and rd.png", file=sys.stderr)
    return 0

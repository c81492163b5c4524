"""latentcast parts VIDEO --model MODEL_DIR"""

from __future__ import annotations

import argparse
import sys

from ._common import command, parser

EPILOG = """\
A movie's decoder can be a base (the model `latentcast train` fit to the whole movie) plus a
small part per scene. This command splits VIDEO into scenes where the model's latents jump,
fits one part per scene onto the base, and writes MODEL_DIR/parts.json and MODEL_DIR/parts/.
`encode`, `ingest` and `bench` then name each scene's part in the movie, and a viewer fetches
each part just before its scene plays. Give it the video the model was trained on: parts are
keyed to its frame numbers.

A scene that finished keeps its part: after a crash or Ctrl-C, the same command resumes at the
first scene without one. Under torchrun each rank fits every N-th scene.

examples:
  latentcast train movie.mp4 --seconds-per-second 16 -o models/movie
  latentcast parts movie.mp4 --model models/movie --seconds-per-second 4
"""


def _layers(text: str) -> tuple[str, ...]:
    layers = tuple(x.strip() for x in text.split(",") if x.strip())
    if not layers:
        raise argparse.ArgumentTypeError("name at least one layer set")
    return layers


def build_parser():
    from latentcast.codec.train.scene_parts import PartOptions

    d = PartOptions()
    p = parser("parts", "Fit a decoder part per scene onto a trained model (capacity that grows with the movie).",
               EPILOG)
    p.add_argument("video", help="the video the model was trained on")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="the trained model dir; parts are added to it")
    p.add_argument("--seconds-per-second", type=float, default=d.seconds_per_second, metavar="S",
                   help=f"wall-clock budget per second of video, shared by the scenes by length; more buys each "
                        f"part more steps (default {d.seconds_per_second:g})")
    p.add_argument("--epochs", type=float, metavar="N",
                   help="instead of --seconds-per-second: N passes over each scene's frames, the same fit on "
                        "any machine however busy (a budget that no longer follows the clock)")
    p.add_argument("--layers", type=_layers, default=d.layers, metavar="LIST",
                   help="what a part retunes: 'affine' (a gain and a bias per channel of every layer: a few kB a "
                        "scene) and/or decoder layer names (head, stem, stages.1: their weights too, as code "
                        f"deltas: more quality, many more bytes); default {','.join(d.layers)}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"frames per step (default {d.batch_size})")
    p.add_argument("--sensitivity", type=float, default=d.sensitivity,
                   help=f"a cut is a latent jump this many times the typical frame step; lower finds more, "
                        f"shorter scenes, each with a part to send (default {d.sensitivity:g})")
    p.add_argument("--min-scene", type=float, default=d.min_scene_s, metavar="SECONDS",
                   help=f"no scene shorter than this (default {d.min_scene_s:g})")
    p.add_argument("--delta-penalty", type=float, default=d.delta_penalty, metavar="L",
                   help="with whole layers in --layers: pull their weights toward the base's by L per code step "
                        "moved, so fewer codes change and the part codes smaller, for less gain (default 0: none)")
    p.add_argument("--rd-slope", type=float, default=d.rd_slope, metavar="DB",
                   help="send a scene's part only if its gain in dB beats this many dB per doubling of the scene's "
                        "bytes (latents and its share of the base); 0 sends every part that helps. Changing it "
                        f"refits nothing (default {d.rd_slope:g}, about what x264 and x265 buy a doubling)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


@command("parts")
def main(argv: list[str]) -> int:
    import latentcast

    args = build_parser().parse_args(argv)
    index = latentcast.fit_parts(args.video, args.model, seconds_per_second=args.seconds_per_second,
                                 epochs=args.epochs,
                                 layers=args.layers, lr=args.lr, batch_size=args.batch_size,
                                 sensitivity=args.sensitivity, min_scene_s=args.min_scene, rd_slope=args.rd_slope,
                                 delta_penalty=args.delta_penalty,
                                 threads=args.threads,
                                 seed=args.seed, progress=not args.quiet)
    if index:
        parts = index["parts"]
        print("| scene | frames | PSNR base | PSNR part fitted | sent | PSNR as sent | part bytes |", file=sys.stderr)
        print("|---|---|---|---|---|---|---|", file=sys.stderr)
        for i, p in enumerate(parts):
            sent = p["sha256"] != index["base_sha256"]
            print(f"| {i} | {p['start']}-{p['end'] - 1} | {p['psnr_base']:.2f} | {p['psnr_fit']:.2f} | "
                  f"{'yes' if sent else 'no, the base'} | {p['psnr_part']:.2f} | {p['bytes_sent']:,} |",
                  file=sys.stderr)
        frames = sum(p["end"] - p["start"] for p in parts)
        mean = lambda key: sum(p[key] * (p["end"] - p["start"]) for p in parts) / frames  # noqa: E731
        print(f"{len(parts)} scenes, {sum(p['bytes_sent'] > 0 for p in parts)} with a part sent: "
              f"{mean('psnr_base'):.2f} dB with the base alone, {mean('psnr_part'):.2f} dB as sent "
              f"({mean('psnr_fit'):.2f} with every fitted part), for {sum(p['bytes_sent'] for p in parts):,} more "
              "decoder bytes", file=sys.stderr)
        print(args.model)
    return 0

"""latentcast ingest VIDEO --model MODEL_DIR --store STORE [--title T]"""

from __future__ import annotations

import sys

from ._common import add_coding_args, audio_kbps, command, parser


def build_parser():
    p = parser("ingest", "Encode a movie with a trained model (on the company's side) and register it in a "
                         "store. The new movie's id is the last line of stdout.",
               "example:\n  latentcast ingest movie.mp4 --model models/movie --store store --title 'My movie'")
    p.add_argument("video", help="input video")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="a trained model dir")
    p.add_argument("--store", required=True, metavar="STORE", help="store directory (created if missing)")
    p.add_argument("--title", help="title shown in the catalog (default: the file name)")
    add_coding_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


@command("ingest")
def main(argv: list[str]) -> int:
    from latentcast.codec.format.quantizer import check_bits, check_refine_steps
    from latentcast.server.store import Store

    args = build_parser().parse_args(argv)
    if args.bits is not None:
        check_bits(args.bits)
    check_refine_steps(args.refine_steps)
    store = Store(args.store, create=True)
    rec = store.ingest(args.video, args.model, title=args.title, bits=args.bits, chunk_seconds=args.chunk_seconds,
                       progress=not args.quiet, audio_kbps=audio_kbps(args), refine_steps=args.refine_steps)
    print(f"ingested {rec.title!r}: {rec.frames} frames at {rec.width}x{rec.height}, "
          f"{rec.stored_bytes:,} bytes, {rec.streaming_kbps:.1f} kbit/s"
          + (f"; sound {rec.audio_kbps:.1f} kbit/s apart" if rec.audio_bytes else "; no sound"), file=sys.stderr)
    print(rec.id)
    return 0

"""latentcast demo: the whole streaming scenario on the bundled sample clip."""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path

from ._common import command, parser

SAMPLE = "cockatoo-320x180.mp4"


def sample_path() -> Path:
    """The bundled sample clip (a 320x180, 14 s, 20 fps excerpt of a real video)."""
    return Path(str(resources.files("latentcast") / "samples" / SAMPLE))


def build_parser():
    from latentcast.codec.format.quantizer import DEFAULT_BITS

    p = parser("demo", "The whole scenario on the bundled sample clip, on this machine:\n"
                       "  1. train a codec (company side)      4. play it back through gRPC (viewer side)\n"
                       "  2. ingest the movie into a store     5. write a side-by-side video and a PNG\n"
                       "  3. serve the store on loopback       6. print the summary\n"
                       "About 3 minutes on 2 CPU cores.")
    p.add_argument("--out", default="latentcast-demo", help="output folder (default ./latentcast-demo)")
    p.add_argument("--video", help="use this video instead of the bundled sample")
    p.add_argument("--minutes", type=float, default=2.0, help="training budget (default 2)")
    p.add_argument("--bits", type=int, default=DEFAULT_BITS,
                   help=f"latent bits the codec is trained for and the movie is stored at (default {DEFAULT_BITS})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _step(i: int, text: str) -> None:
    print(f"[{i}/6] {text}", file=sys.stderr, flush=True)


@command("demo")
def main(argv: list[str]) -> int:
    import numpy as np

    from latentcast.client.player import play
    from latentcast.client.session import Session
    from latentcast.codec import video
    from latentcast.codec.format.atomic import write_bytes_atomic
    from latentcast.codec.format.quantizer import check_bits
    from latentcast.codec.quality import mse_to_psnr
    from latentcast.server.app import ServerOptions, run_server
    from latentcast.server.store import Store

    from . import train

    args = build_parser().parse_args(argv)
    check_bits(args.bits)
    out = Path(args.out)
    source = args.video or str(sample_path())
    model, store_dir = out / "model", out / "store"
    played, compare, png = out / "played.mkv", out / "side_by_side.mp4", out / "frame_pair.png"
    quiet = ["-q"] if args.quiet else []
    t0 = time.perf_counter()

    _step(1, f"training a codec on {source} for {args.minutes:g} min")
    code = train.main([source, "-o", str(model), "--minutes", str(args.minutes), "--bits", str(args.bits)] + quiet)
    if code:
        return code

    _step(2, f"ingesting into {store_dir}")
    store = Store(store_dir, create=True)
    rec = store.ingest(source, model, title=Path(source).stem, bits=args.bits, progress=not args.quiet)

    _step(3, "serving the store on 127.0.0.1 (a free port)")
    with run_server(store, ServerOptions(listen="127.0.0.1:0")) as srv:
        _step(4, f"playing {rec.title!r} from {srv.address} into {played}")
        with Session(srv.address, cache_dir=out / "client-cache") as session:
            summary = play(session, rec.id, str(played), reference=source, progress=not args.quiet)

    _step(5, f"writing {compare} (source | reconstruction) and {png}")
    middle = (None, 0.0)  # the frame pair shown in the PNG
    with video.open_writer(str(compare), 2 * rec.width + 4, rec.height, rec.fps) as writer:
        for i, (src, rec_frame) in enumerate(zip(video.read_frames(source, (rec.width, rec.height)),
                                                 video.read_frames(played))):
            pair = video.side_by_side(src, rec_frame)
            writer.write(pair)
            if i == rec.frames // 2 or middle[0] is None:
                middle = (pair, float(np.mean((src.astype(np.float32) - rec_frame) ** 2)))
    write_bytes_atomic(png, video.encode_png(middle[0]))

    _step(6, "summary")
    lines = summary.lines() + [
        f"movie bytes  {rec.stored_bytes:,} in the store ({rec.streaming_bytes / rec.frames:.0f} bytes/frame streamed)",
        f"decoder      {rec.decoder_bytes:,} bytes (downloaded once, cached by sha256)",
        f"PNG frame    PSNR {mse_to_psnr(middle[1]):.2f} dB (frame {rec.frames // 2})",
    ]
    for line in lines:
        print("  " + line, file=sys.stderr)
    outputs = [(f"{model}/", "the trained codec"),
               (f"{store_dir}/", "catalog.sqlite + the encoded movie + its decoder"),
               (str(played), "what the viewer decoded (lossless)"),
               (str(compare), "source | reconstruction"),
               (str(png), "one frame pair")]
    width = max(len(path) for path, _ in outputs)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s. outputs:", file=sys.stderr)
    for path, what in outputs:
        print(f"  {path.ljust(width)}  {what}", file=sys.stderr)
    print(f"play it again:\n"
          f"  latentcast serve --store {store_dir} --http 127.0.0.1:8080 &\n"
          f"  latentcast play {rec.id} --server 127.0.0.1:50051 -o movie.mp4   (or -o - | ffplay -)\n"
          f"or watch it in a browser, decoded in the page: http://127.0.0.1:8080/watch/{rec.id}",
          file=sys.stderr)
    return 0

"""latentcast similar MOVIE.lcv --model MODEL_DIR --frame N [--k 8] [--store STORE] [-o sheet.png]"""

from __future__ import annotations

import json
import sys

from ._common import add_runtime_arg, command, parser

EPILOG = """\
Distance is the RMS over the latent dimensions, each in units of its spread over the movie:
0 is the same code, about 1.4 two unrelated frames. Only the container's latents are read;
pixels are decoded only for the contact sheet (-o). Neighbouring frames of the same shot come
first; --min-gap skips them to find other moments that look alike.

With --store, the store's movies encoded by the same model are searched too. Each model has
its own latent space, so movies encoded by another are left out, and the output says how many.

examples:
  latentcast similar movie.lcv --model models/movie --frame 120
  latentcast similar movie.lcv --model models/movie --frame 120 --min-gap 48 -o similar.png
  latentcast similar movie.lcv --model models/movie --frame 120 --store store --json
"""


def build_parser():
    p = parser("similar", "The frames nearest to a frame in latent space, from the latents alone.", EPILOG)
    p.add_argument("movie", metavar="MOVIE.lcv")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="the model the movie was encoded with")
    p.add_argument("--frame", type=int, required=True, help="the frame to match (0-based)")
    p.add_argument("--k", type=int, default=8, help="how many neighbours (default 8)")
    p.add_argument("--min-gap", type=int, default=0, metavar="FRAMES",
                   help="leave out frames this close to the query in the same movie (default 0: only the frame "
                        "itself); more finds other shots rather than the query's own")
    p.add_argument("--store", metavar="STORE", help="also search this store's movies encoded by the same model")
    p.add_argument("-o", "--output", metavar="PNG", help="write a contact sheet: the frame, then its neighbours")
    add_runtime_arg(p)
    p.add_argument("--json", action="store_true",
                   help='print {"neighbours": [{"frame": f, "distance": d}, ...]}, nearest first')
    return p


@command("similar")
def main(argv: list[str]) -> int:
    import latentcast
    from latentcast.client.checks import printable

    args = build_parser().parse_args(argv)
    found = latentcast.similar(args.movie, args.model, args.frame, k=args.k, store=args.store,
                               min_gap=args.min_gap)
    if args.output:
        _contact_sheet(args, found)
    if args.json:
        print(json.dumps(found.to_json()))
        return 0
    if args.store:
        print(f"searched {found.movies_searched} other movies of the store; left out {found.movies_left_out} "
              "encoded by another model (another latent space)", file=sys.stderr)
    for n in found.neighbours:
        where = f"movie {printable(n.movie)} " if n.movie else ""
        print(f"{where}frame {n.frame:>7}  distance {n.distance:.3f}")
    return 0


def _contact_sheet(args, found) -> None:
    """The query frame, then each neighbour, decoded; neighbours from other movies of the store are
    decoded from their own containers."""
    from latentcast.codec.explore.latents import frame_latents
    from latentcast.codec.explore.sheet import grid, save
    from latentcast.codec.format.container import Container
    from latentcast.codec.runtime.decode import decode_frames
    from latentcast.codec.runtime.scene_decoders import model_decoders
    from latentcast.server.store import Store

    movies: dict[str, tuple[Container, object]] = {}  # path -> (container, its decoders), each built once

    def decoded(path, frame: int):
        if path not in movies:
            c = Container(path)
            movies[path] = (c, model_decoders(args.model, tuple(c.header.parts), runtime=args.runtime))
        c, decoders = movies[path]
        return next(decode_frames(decoders, frame, frame_latents(c, frame)[None]))[0]

    store = Store(args.store) if args.store else None
    try:
        tiles = [decoded(str(args.movie), args.frame)]
        captions = [f"frame {args.frame}"]
        for n in found.neighbours:
            tiles.append(decoded(str(store.movie_path(n.movie)) if n.movie else str(args.movie), n.frame))
            captions.append(f"{n.frame}  d={n.distance:.2f}")
    finally:
        for c, decoders in movies.values():
            decoders.close()
            c.close()
    save(grid([tiles], [captions]), args.output)
    print(f"wrote {args.output}", file=sys.stderr)

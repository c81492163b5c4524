"""latentcast inspect MODEL_DIR --movie MOVIE.lcv --frame N -o grid.png [--pca]"""

from __future__ import annotations

import sys

from ._common import add_runtime_arg, command, parser

EPILOG = """\
Each row moves one latent direction of frame N from its 5th to its 95th percentile over the
movie, everything else held; each column is one step (its caption the direction's value). A
direction is one latent channel's whole plane (all its grid positions together), or with
--pca a principal component of the movie's latents. Directions are ranked by how much of the
picture they change (mean absolute change between the sweep's two ends, in 8-bit levels), and
the whole ranking is printed; the grid shows the top --rows.

examples:
  latentcast inspect models/movie --movie movie.lcv --frame 120 -o grid.png
  latentcast inspect models/movie --movie movie.lcv --frame 120 --pca --rows 6 -o pca.png
"""


def build_parser():
    p = parser("inspect", "What each latent feature does: sweep one at a time and decode.", EPILOG)
    p.add_argument("model", metavar="MODEL_DIR", help="the model the movie was encoded with")
    p.add_argument("--movie", required=True, metavar="MOVIE.lcv")
    p.add_argument("--frame", type=int, required=True, help="the frame to sweep around (0-based)")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="the labelled grid")
    p.add_argument("--pca", action="store_true", help="sweep principal components instead of latent channels")
    p.add_argument("--steps", type=int, default=7, help="columns: steps from the 5th to the 95th percentile "
                   "(default 7)")
    p.add_argument("--rows", type=int, default=8, help="rows: the directions that change the picture most "
                   "(default 8)")
    add_runtime_arg(p)
    return p


@command("inspect")
def main(argv: list[str]) -> int:
    import latentcast
    from latentcast.codec.explore.sheet import grid, save
    from latentcast.codec.format.errors import UsageError

    args = build_parser().parse_args(argv)
    if args.rows <= 0:
        raise UsageError("--rows must be positive")
    found = latentcast.inspect(args.model, args.movie, args.frame, pca=args.pca, steps=args.steps, rows=args.rows,
                               runtime=args.runtime)
    save(grid(found.rows, found.captions, found.row_titles), args.output)
    print(f"{'component' if args.pca else 'direction':<24} change (mean 8-bit levels)")
    for name, change in found.ranking:
        print(f"{name:<24} {change:.2f}")
    print(f"wrote {args.output}: {len(found.rows)} rows of {args.steps} steps", file=sys.stderr)
    return 0

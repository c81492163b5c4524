"""latentcast rm ID --store STORE"""

from __future__ import annotations

import sys

from ._common import command, parser


def build_parser():
    p = parser("rm", "Remove a movie from a store, and its decoder when no other movie uses it.")
    p.add_argument("id", help="movie id (see latentcast list)")
    p.add_argument("--store", required=True, metavar="STORE", help="store directory")
    return p


@command("rm")
def main(argv: list[str]) -> int:
    from latentcast.server.store import Store

    args = build_parser().parse_args(argv)
    rec, dropped = Store(args.store).remove(args.id)
    print(f"removed {rec.title!r} ({rec.id})" + ("; its decoder was used by no other movie and is gone too"
                                                 if dropped else ""), file=sys.stderr)
    return 0

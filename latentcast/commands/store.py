"""latentcast store check --store STORE [--repair]"""

from __future__ import annotations

import json
import sys

from ._common import command, parser


def build_parser():
    p = parser("store", "Maintain a store. 'check' verifies every catalog row, file and checksum and lists "
                        "orphans (files or rows nothing refers to, e.g. from a killed ingest).",
               "exit status: 0 when the store is sound (after --repair removed the orphans), 1 otherwise.\n"
               "--repair deletes orphans older than --min-age; it never deletes a registered movie, damaged\n"
               "or not: damage is reported for a person to decide (latentcast rm ID).")
    p.add_argument("action", choices=["check"], help="what to do")
    p.add_argument("--store", required=True, metavar="STORE")
    p.add_argument("--repair", action="store_true", help="delete orphans")
    p.add_argument("--min-age", type=float, default=600.0, metavar="SECONDS",
                   help="only repair orphans at least this old: younger ones may be an ingest in progress "
                        "(default 600)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


@command("store")
def main(argv: list[str]) -> int:
    from dataclasses import asdict

    from latentcast.server.store import Store, check_store

    args = build_parser().parse_args(argv)
    report = check_store(Store(args.store), repair=args.repair, min_orphan_age_s=args.min_age)
    if args.json:
        print(json.dumps({**asdict(report), "clean": report.clean}, indent=2))
    else:
        print(f"{report.movies_ok} movies verified: {report.movie_bytes:,} bytes of movies, "
              f"{report.decoder_bytes:,} of decoders and parts, {report.thumbnail_bytes:,} of seek thumbnails")
        for line in report.damaged:
            print(f"DAMAGED  {line}")
        for line in report.orphans:
            print(f"{'REMOVED ' if line in report.removed else 'ORPHAN  '} {line}")
        print("store is sound" if report.clean else "store has problems", file=sys.stderr)
    return 0 if report.clean else 1

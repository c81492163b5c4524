"""latentcast loadtest --server ADDR --clients N --seconds T [--decode]"""

from __future__ import annotations

import json
import sys

from ._common import command, parser

EPILOG = """\
Each client plays movies from the catalog in a loop, from spread-out start frames, and every
stream is checked to deliver each requested frame exactly once. The health service is probed
every 100 ms. Exits 1 if any error, missing or duplicated frame, or failed health check occurred.
Only loopback addresses are accepted.

examples:
  latentcast loadtest --server 127.0.0.1:50051 --clients 64 --seconds 60
  latentcast loadtest --server 127.0.0.1:50051 --clients 1 --seconds 10 --decode --server-pid 1234
"""


def build_parser():
    p = parser("loadtest", "Run N concurrent playback streams against a server and account for every frame.",
               EPILOG)
    p.add_argument("--server", default="127.0.0.1:50051", help="server address (loopback only)")
    p.add_argument("--token", help="bearer token (default: LATENTCAST_TOKEN)")
    p.add_argument("--clients", type=int, default=16, help="concurrent streams (default 16)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    p.add_argument("--decode", action="store_true", help="also decode every frame (client CPU bound)")
    p.add_argument("--movie", help="stream only this movie (id or title)")
    p.add_argument("--server-pid", type=int, help="server process id: report its CPU time and peak RSS")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


@command("loadtest")
def main(argv: list[str]) -> int:
    import os

    from latentcast.client.loadtest import run_loadtest

    args = build_parser().parse_args(argv)
    token = args.token if args.token is not None else os.environ.get("LATENTCAST_TOKEN")
    report = run_loadtest(args.server, args.clients, args.seconds, token=token, decode=args.decode,
                          movie=args.movie, server_pid=args.server_pid)
    d = report.as_dict()
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            print(f"{k:<30} {v}")
    if not report.ok:
        print("latentcast loadtest: FAILED: errors, missing or duplicated frames, or failed health checks",
              file=sys.stderr)
        return 1
    return 0

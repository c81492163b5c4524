"""latentcast loadtest --server ADDR --clients N --seconds T [--decode] [--mix] [--chaos-kill S --store STORE]"""

from __future__ import annotations

import json
import sys

from ._common import command, parser

EPILOG = """\
Each client plays movies from the catalog in a loop, from spread-out start frames, and every
stream is checked to deliver each requested frame exactly once. The health service is probed
every 100 ms. Exits 1 if any error, missing or duplicated frame, or failed health check occurred.
Only loopback addresses are accepted.

--mix makes each stream one of what viewers do (play through 45 %, seek 20 %, cancel after a
few chunks 15 %, read slowly 10 %, download the decoder whole 10 %), seeded by --seed.

--chaos-kill S starts `latentcast serve --store STORE` itself on a free loopback port, SIGKILLs
it every S seconds and starts it again. Streams resume from the first frame they lack, as the
player does; every frame must still arrive exactly once, and every kill must be followed by a
server that answers. The server's RSS is sampled each second: the report gives its largest in
the first and in the last minute, so a leak shows. Health checks fail by design while it is
down; they are counted, not held against the run.

examples:
  latentcast loadtest --server 127.0.0.1:50051 --clients 64 --seconds 60
  latentcast loadtest --server 127.0.0.1:50051 --clients 1 --seconds 10 --decode --server-pid 1234
  latentcast loadtest --store STORE --chaos-kill 30 --mix --clients 64 --seconds 600 --json
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
    p.add_argument("--server-pid", type=int, help="server process id: report its CPU time, peak RSS and RSS "
                   "over the run")
    p.add_argument("--mix", action="store_true",
                   help="streams that seek, cancel, read slowly and download decoders, not only play through")
    p.add_argument("--seed", type=int, default=0, help="seed of --mix's choices (default 0)")
    p.add_argument("--chaos-kill", type=float, metavar="S",
                   help="start the server on --store and SIGKILL and restart it every S seconds (--server unused)")
    p.add_argument("--store", metavar="STORE", help="the store --chaos-kill serves")
    p.add_argument("--max-lead", type=float, default=0.0, metavar="S",
                   help="with --chaos-kill: the server paces streams to S seconds ahead of real time, as viewers "
                        "are served (0, the default: unpaced, which loads the server hardest)")
    p.add_argument("--server-log", metavar="PATH", help="with --chaos-kill: append the server's stderr to PATH")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


@command("loadtest")
def main(argv: list[str]) -> int:
    import os
    from pathlib import Path

    from latentcast.client.loadtest import run_loadtest
    from latentcast.codec.format.errors import UsageError

    args = build_parser().parse_args(argv)
    token = args.token if args.token is not None else os.environ.get("LATENTCAST_TOKEN")
    if args.store and args.chaos_kill is None:
        raise UsageError("--store is for --chaos-kill, which starts the server itself")
    report = run_loadtest(args.server, args.clients, args.seconds, token=token, decode=args.decode,
                          movie=args.movie, server_pid=args.server_pid, mix=args.mix, seed=args.seed,
                          chaos_kill_s=args.chaos_kill, store=args.store,
                          server_log=Path(args.server_log) if args.server_log else None, max_lead_s=args.max_lead)
    d = report.as_dict()
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            print(f"{k:<30} {v}")
    if not report.ok:
        print("latentcast loadtest: FAILED: errors, missing or duplicated frames, failed health checks, "
              "or a server that did not come back", file=sys.stderr)
        return 1
    return 0

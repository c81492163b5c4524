"""latentcast serve --store STORE [--listen 127.0.0.1:50051] [--token T]..."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from ._common import command, parser

EPILOG = """\
Tokens come from --token (repeatable), the LATENTCAST_TOKENS variable (comma-separated) and
--tokens-file (one per line), which SIGHUP re-reads: tokens rotate without a restart, calls
already admitted run on. Clients send 'authorization: Bearer <token>'. Without any token the
server listens on loopback only. The health service (grpc.health.v1) answers without a token.

Prometheus metrics (calls by method and status, frames and bytes sent, decoder downloads, call
and first-chunk latency histograms, slots held) are at /metrics on the --http listener and on
--metrics ADDR, behind the token when tokens are configured.

SIGTERM or Ctrl-C stops accepting calls and lets in-flight streams finish within --grace seconds.
"""


def build_parser():
    p = parser("serve", "Serve a store's movies over gRPC: catalog, decoder download, latent streams.", EPILOG)
    p.add_argument("--store", required=True, metavar="STORE", help="store directory")
    p.add_argument("--listen", default="127.0.0.1:50051", help="address:port (default 127.0.0.1:50051; port 0 "
                   "picks a free one)")
    p.add_argument("--http", metavar="ADDR", help="also serve plain HTTP/1.1 on address:port (the catalog, "
                   "descriptions, decoders and each chunk at its own URL, which any HTTP cache can carry; "
                   "same tokens, limits and TLS)")
    p.add_argument("--cors-origin", metavar="ORIGIN",
                   help="let pages from this origin (https://player.example.com) read the public chunks over HTTP; "
                        "without it no CORS header is sent, and only the server's own /watch page reads them")
    p.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    p.add_argument("--tokens-file", help="file with one accepted token per line")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (needs --tls-key)")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--tls-client-ca", metavar="PEM",
                   help="mutual TLS: accept only clients whose certificate this CA signed (needs --tls-cert)")
    p.add_argument("--insecure", action="store_true",
                   help="allow listening off loopback without TLS: tokens then cross the network in the clear, "
                        "so only on a trusted network or behind a proxy that ends TLS")
    p.add_argument("--max-workers", type=int, help="RPC worker threads (default: --max-streams + 32)")
    p.add_argument("--max-lead", type=float, default=0.0, metavar="SECONDS",
                   help="pace each stream to at most this many seconds ahead of real time (default 0: unpaced); "
                        "saves bandwidth when viewers stop early, costs nothing for realtime playback")
    p.add_argument("--max-frames-per-request", type=int, default=10_000_000, metavar="N",
                   help="refuse StreamLatents requests for more than N frames with INVALID_ARGUMENT "
                        "(default 10,000,000; a request for 'to the end' is always allowed)")
    p.add_argument("--max-request-bytes", type=int, default=64 * 1024, metavar="BYTES",
                   help="refuse larger request messages with RESOURCE_EXHAUSTED before parsing (default 65536)")
    p.add_argument("--max-streams", type=int, default=128,
                   help="concurrent latent streams in total (default 128); more get RESOURCE_EXHAUSTED at once")
    p.add_argument("--max-streams-per-client", type=int, default=32,
                   help="concurrent streams per token, or per peer without tokens (default 32)")
    p.add_argument("--stall-seconds", type=float, default=30.0, metavar="S",
                   help="cancel a stream whose client has not taken a chunk for S seconds, freeing its worker and "
                        "slot; its player asks again from the next frame it lacks (0: never; default 30)")
    p.add_argument("--max-stream-seconds", type=float, default=6 * 3600.0,
                   help="longest a single stream may run (default 6 h); clients resume after it")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain streams on shutdown (default 10)")
    p.add_argument("--metrics", metavar="ADDR",
                   help="also serve Prometheus metrics at http://ADDR/metrics, on a listener of their own (the "
                        "--http listener has /metrics too); same token and TLS rules as --http")
    p.add_argument("--access-log", metavar="PATH",
                   help="write a JSON line per call, gRPC and HTTP (transport, method, movie or decoder, status, "
                        "bytes, ms, peer; never a token) to PATH, or - for stderr")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="how much the server logs besides the access log (default warning; -v is info)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at info level: reconnects, reloads, refusals")
    return p


@command("serve")
def main(argv: list[str]) -> int:
    from pathlib import Path

    from latentcast.codec.format.address import is_loopback
    from latentcast.codec.format.errors import UsageError
    from latentcast.server.app import ServerOptions, start_server
    from latentcast.server.auth import load_tokens
    from latentcast.server.observe import ACCESS_LOG
    from latentcast.server.service import Limits
    from latentcast.server.store import Store

    args = build_parser().parse_args(argv)
    logging.getLogger().setLevel((args.log_level or ("info" if args.verbose else "warning")).upper())
    if args.access_log:
        access = logging.getLogger(ACCESS_LOG)
        access.setLevel(logging.INFO)
        access.propagate = False
        out = logging.StreamHandler(sys.stderr) if args.access_log == "-" else logging.FileHandler(args.access_log)
        out.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(out)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    tokens = load_tokens(args.token, args.tokens_file)
    if not tokens and not is_loopback(args.listen):
        raise UsageError(f"no token configured: refusing to listen on {args.listen}; give --token or listen on "
                         "127.0.0.1")
    store = Store(args.store)
    limits = Limits(max_frames_per_request=args.max_frames_per_request, max_lead_s=args.max_lead,
                    max_streams=args.max_streams, max_streams_per_client=args.max_streams_per_client,
                    max_stream_seconds=args.max_stream_seconds, stall_s=args.stall_seconds)
    opts = ServerOptions(listen=args.listen, tokens=tokens, max_workers=args.max_workers, limits=limits,
                         max_request_bytes=args.max_request_bytes,
                         tls_cert=Path(args.tls_cert).read_bytes() if args.tls_cert else None,
                         tls_key=Path(args.tls_key).read_bytes() if args.tls_key else None,
                         tls_client_ca=Path(args.tls_client_ca).read_bytes() if args.tls_client_ca else None,
                         insecure=args.insecure, access_log=bool(args.access_log), http_listen=args.http,
                         cors_origin=args.cors_origin, metrics_listen=args.metrics)
    try:
        srv = start_server(store, opts)
    except ValueError as e:
        raise UsageError(str(e)) from None
    host = args.listen.rsplit(":", 1)[0]
    print(f"serving {len(store.list())} movies from {args.store} on {host}:{srv.port}"
          + (" with TLS" if opts.tls_cert else "")
          + ("" if tokens else " (no token configured: loopback only)"), file=sys.stderr, flush=True)
    if srv.http is not None:
        scheme = "https" if opts.tls_cert else "http"
        http_host = args.http.rsplit(":", 1)[0]
        print(f"HTTP on {scheme}://{http_host}:{srv.http.port}/v1/movies", file=sys.stderr, flush=True)
    if srv.metrics_http is not None:
        scheme = "https" if opts.tls_cert else "http"
        print(f"metrics on {scheme}://{args.metrics.rsplit(':', 1)[0]}:{srv.metrics_http.port}/metrics",
              file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def reload_tokens(*_):
        if srv.auth is None:
            print("SIGHUP: this server started without tokens; restart it with some", file=sys.stderr, flush=True)
            return
        try:
            n = srv.auth.replace(load_tokens(args.token, args.tokens_file))
        except (OSError, ValueError) as e:
            print(f"SIGHUP: tokens not reloaded ({e}); the ones before stay", file=sys.stderr, flush=True)
            return
        print(f"SIGHUP: reloaded {n} tokens", file=sys.stderr, flush=True)

    signal.signal(signal.SIGHUP, reload_tokens)
    stop.wait()
    print(f"shutting down: draining streams for up to {args.grace:.0f} s", file=sys.stderr, flush=True)
    srv.stop(grace=args.grace)
    return 0

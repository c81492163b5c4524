"""Building and running the gRPC server: servicer, auth, health, reflection, TLS, shutdown."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from latentcast.codec.format.address import is_loopback
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc

from .auth import TokenInterceptor
from .http_gateway import METRICS_ONLY, Gateway, RunningHttp, start_http
from .metrics import Metrics
from .observe import CallObserver, ObservingInterceptor
from .service import LatentcastServicer, Limits
from .store import Store

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Latentcast"].full_name
MAX_RECEIVE = 64 * 1024  # default request cap: requests are tiny; bigger ones are refused before parsing
MAX_SEND = 4 * 1024 * 1024  # a decoder chunk is 1 MiB; a latent chunk a few KB


@dataclass
class ServerOptions:
    listen: str = "127.0.0.1:0"
    tokens: list[str] = field(default_factory=list)
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    # mTLS: only clients with a certificate this CA signed get a connection at all.
    tls_client_ca: bytes | None = None
    max_request_bytes: int = MAX_RECEIVE
    max_workers: int | None = None  # default: every allowed stream plus room for unary calls and health
    # Calls gRPC's core holds before a worker picks them up. Past either bound the core sheds them
    # as CANCELLED. One bound, not gRPC's default soft limit of 1,000 with random drops above it,
    # so a burst below it is never shed for its size; each waiting call holds one small request.
    max_pending_calls: int = 4096
    max_queue_seconds: int = 30  # a call waiting longer than this is shed, not left waiting without end
    limits: Limits = field(default_factory=Limits)
    # Off loopback without TLS, tokens and streams would cross the network in the clear: refused
    # unless this says the network is trusted (a private link, TLS ended by a proxy in front).
    insecure: bool = False
    access_log: bool = False  # a JSON line per call on the "latentcast.access" logger
    # Also answer plain HTTP/1.1 here (server/http_gateway.py), with the same tokens, limits and TLS.
    http_listen: str | None = None
    cors_origin: str | None = None  # HTTP: the one other origin whose pages may read the public chunks
    # Prometheus text at /metrics on a listener of its own (the HTTP listener has it too).
    metrics_listen: str | None = None


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    servicer: LatentcastServicer
    health: health.HealthServicer
    auth: TokenInterceptor | None = None  # None: no tokens (loopback only)
    http: RunningHttp | None = None
    tls: bool = False
    metrics: Metrics | None = None
    metrics_http: RunningHttp | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str | None:
        """The HTTP side's base URL on loopback, when it runs."""
        if self.http is None:
            return None
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http.port}"

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let in-flight streams finish within ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        for side in (self.http, self.metrics_http):
            if side is not None:
                side.stop()
        self.server.stop(grace).wait()
        self.servicer.close()


def start_server(store: Store, opts: ServerOptions) -> RunningServer:
    """Start serving ``store``; returns once the port is bound."""
    if not opts.tokens and not is_loopback(opts.listen):
        raise ValueError(f"refusing to listen on {opts.listen} without a token: "
                         "give --token (or LATENTCAST_TOKENS), or listen on 127.0.0.1")
    if opts.tls_client_ca and not opts.tls_cert:
        raise ValueError("--tls-client-ca needs the server's own --tls-cert and --tls-key")
    if not (opts.tls_cert or opts.insecure or is_loopback(opts.listen)):
        raise ValueError(f"refusing to listen on {opts.listen} without TLS, which would send tokens in the clear: "
                         "give --tls-cert and --tls-key, or --insecure on a trusted network")
    for what, listen in (("HTTP", opts.http_listen), ("metrics", opts.metrics_listen)):
        if listen and not opts.tokens and not is_loopback(listen):
            raise ValueError(f"refusing to serve {what} on {listen} without a token")
        if listen and not (opts.tls_cert or opts.insecure or is_loopback(listen)):
            raise ValueError(f"refusing to serve {what} on {listen} without TLS: give --tls-cert and "
                             "--tls-key, or --insecure on a trusted network")
    auth = TokenInterceptor(opts.tokens) if opts.tokens else None
    metrics = Metrics()
    observer = CallObserver(metrics, log_calls=opts.access_log)
    # The observer sees calls the token check refused too: it runs first, around everything.
    interceptors = [ObservingInterceptor(observer)] + ([auth] if auth else [])
    # A sync gRPC stream holds a worker thread for its whole life. With a worker for every stream
    # the limits allow, plus spare ones, health checks and catalog calls never wait behind streams;
    # past `maximum_concurrent_rpcs` gRPC answers RESOURCE_EXHAUSTED at once instead of queueing.
    workers = opts.max_workers or opts.limits.max_streams + 32
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="latentcast-rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", opts.max_request_bytes),
            ("grpc.max_send_message_length", MAX_SEND),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.so_reuseport", 0),
            ("grpc.server_max_unrequested_time_in_server", opts.max_queue_seconds),
            ("grpc.server.max_pending_requests", opts.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", opts.max_pending_calls),
        ],
        maximum_concurrent_rpcs=workers,
    )
    servicer = LatentcastServicer(store, opts.limits, keyed_by_token=bool(opts.tokens))
    pb_grpc.add_LatentcastServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if opts.tls_cert and opts.tls_key:
        creds = grpc.ssl_server_credentials([(opts.tls_key, opts.tls_cert)], root_certificates=opts.tls_client_ca,
                                            require_client_auth=opts.tls_client_ca is not None)
        port = server.add_secure_port(opts.listen, creds)
    else:
        port = server.add_insecure_port(opts.listen)
    if port == 0:
        raise OSError(f"cannot listen on {opts.listen}")
    metrics.gauge("latentcast_streams_active", "gRPC latent streams and decoder downloads holding a slot now",
                  lambda: servicer.active_streams)
    http = metrics_http = None
    if opts.http_listen:
        gateway = Gateway(store, opts.limits, auth, servicer.decoders, opts.cors_origin, observer)
        metrics.gauge("latentcast_http_requests_active", "HTTP requests holding a slot now",
                      lambda: gateway.slots.active)
        http = _start_http(opts, opts.http_listen, gateway)
    if opts.metrics_listen:
        only_metrics = Gateway(store, opts.limits, auth, servicer.decoders, None, observer, routes=METRICS_ONLY)
        metrics_http = _start_http(opts, opts.metrics_listen, only_metrics)
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, servicer, health_servicer, auth, http, tls=bool(opts.tls_cert),
                         metrics=metrics, metrics_http=metrics_http)


def _start_http(opts: ServerOptions, listen: str, gateway: Gateway) -> RunningHttp:
    """An HTTP listener, with TLS from the same PEM bytes as gRPC's (ssl reads them from files:
    written to a private temporary folder, removed once loaded)."""
    if not opts.tls_cert:
        return start_http(listen, gateway)
    with tempfile.TemporaryDirectory(prefix="latentcast-tls-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(opts.tls_cert)
        key.touch(mode=0o600)
        key.write_bytes(opts.tls_key or b"")
        return start_http(listen, gateway, str(cert), str(key))


@contextlib.contextmanager
def run_server(store: Store, opts: ServerOptions | None = None) -> Iterator[RunningServer]:
    """``with run_server(store) as srv:`` serves on 127.0.0.1 at ``srv.port`` until the block ends."""
    srv = start_server(store, opts or ServerOptions())
    try:
        yield srv
    finally:
        srv.stop(grace=1.0)

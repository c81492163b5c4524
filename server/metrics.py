"""Prometheus metrics for one server: calls by transport, method and status, what they sent, how
long they took, and what holds a slot now.

Each server has its own registry (not prometheus_client's global one), so servers started side
by side in one process, as the tests do, count apart. The text is served at ``/metrics`` on the
HTTP listener and on ``serve --metrics ADDR``, behind the token when tokens are configured.

Labels stay few and bounded: a movie id is never a label (a catalog of thousands would make as
many series); the access log has the per-movie view.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
# From a health check's milliseconds to a whole movie streamed in real time.
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                1800.0, 7200.0)
FIRST_CHUNK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The counters one server keeps; ``record`` is called once per finished call."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter("latentcast_calls", "Calls answered, by transport (grpc, http), method and status: a "
                             "gRPC code name or an HTTP status; every status but OK, 200, 206 and 304 is an error",
                             ("transport", "method", "status"), registry=r)
        self.seconds = Histogram("latentcast_call_seconds", "Calls' lengths, from arrival to the last byte handed "
                                 "over (a stream's whole life)", ("transport", "method"), buckets=CALL_BUCKETS,
                                 registry=r)
        self.first_chunk = Histogram("latentcast_first_chunk_seconds", "From a latent stream's arrival to its first "
                                     "chunk handed to gRPC", buckets=FIRST_CHUNK_BUCKETS, registry=r)
        self.frames = Counter("latentcast_frames_sent", "Frames of latents sent: in gRPC stream chunks and in whole "
                              "HTTP chunk answers", ("transport",), registry=r)
        self.bytes = Counter("latentcast_bytes_sent", "Bytes of answers: serialized messages for gRPC, bodies for "
                             "HTTP", ("transport", "method"), registry=r)
        self.decoder_downloads = Counter("latentcast_decoder_downloads", "Decoders and parts sent whole: GetDecoder "
                                         "streams that ended OK, and whole HTTP decoder answers",
                                         ("transport",), registry=r)
        self._gauges: dict[str, Gauge] = {}

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (slots held now, say); naming one twice keeps the first."""
        if name not in self._gauges:
            g = Gauge(name, help_text, registry=self.registry)
            g.set_function(read)
            self._gauges[name] = g

    def record(self, transport: str, method: str, status: str, seconds: float, nbytes: int, frames: int = 0,
               first_chunk_s: float | None = None, decoder: bool = False) -> None:
        """One finished call."""
        self.calls.labels(transport, method, status).inc()
        self.seconds.labels(transport, method).observe(seconds)
        if nbytes:
            self.bytes.labels(transport, method).inc(nbytes)
        if frames:
            self.frames.labels(transport).inc(frames)
        if first_chunk_s is not None:
            self.first_chunk.observe(first_chunk_s)
        if decoder:
            self.decoder_downloads.labels(transport).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

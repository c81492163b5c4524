"""Concurrent playback streams against a running server, with every frame accounted for.

Each of N client threads plays movies from the catalog again and again for T seconds (each
stream bounded by the movie's length, the whole run by T plus a grace period). For every
stream it checks that the chunks cover the requested frames exactly once. A separate thread
probes the health service every 100 ms. Only loopback addresses are accepted: this is a tool
for testing our own server, not anyone else's.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass, field

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from latentcast.codec.format.address import is_loopback
from latentcast.codec.format.container import chunk_checksum
from latentcast.codec.format.errors import UsageError
from latentcast.codec.runtime.decode import decode_frames
from latentcast.proto import latentcast_pb2 as pb

from .session import Session
from .wire import chunk_latents, movie_side_information


def check_loopback(address: str) -> None:
    if not is_loopback(address):
        raise UsageError(f"loadtest only targets loopback addresses, not {address!r}")


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds used, peak RSS bytes) of a process on this machine, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return cpu, peak


@dataclass
class LoadReport:
    clients: int
    seconds: float
    streams: int = 0
    frames: int = 0
    wire_bytes: int = 0
    payload_bytes: int = 0
    missing: int = 0
    duplicated: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    first_chunk_s: list[float] = field(default_factory=list)
    health_s: list[float] = field(default_factory=list)
    health_failures: int = 0
    decoded: int = 0
    decode_s: float = 0.0
    server_cpu_s: float | None = None
    server_peak_rss: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.missing and not self.duplicated and not self.health_failures

    def as_dict(self) -> dict:
        return {
            "clients": self.clients, "seconds": round(self.seconds, 2), "streams": self.streams,
            "frames": self.frames, "frames_per_s": round(self.frames / self.seconds, 1),
            "wire_bytes_per_frame": round(self.wire_bytes / max(1, self.frames), 2),
            "payload_bytes_per_frame": round(self.payload_bytes / max(1, self.frames), 2),
            "first_chunk_ms_p50": _ms(_percentile(self.first_chunk_s, 50)),
            "first_chunk_ms_p99": _ms(_percentile(self.first_chunk_s, 99)),
            "health_ms_p50": _ms(_percentile(self.health_s, 50)), "health_ms_p99": _ms(_percentile(self.health_s, 99)),
            "health_failures": self.health_failures,
            "errors": {k: v for k, v in self.errors.items()}, "missing_frames": self.missing,
            "duplicated_frames": self.duplicated,
            "decoded_frames": self.decoded,
            "decode_fps": round(self.decoded / self.decode_s, 1) if self.decode_s else None,
            "server_cpu_s": None if self.server_cpu_s is None else round(self.server_cpu_s, 2),
            "server_cpu_per_stream_percent": None if self.server_cpu_s is None else
            round(100 * self.server_cpu_s / self.seconds / max(1, self.clients), 2),
            "server_peak_rss_mb": None if self.server_peak_rss is None else round(self.server_peak_rss / 2**20, 1),
            "ok": self.ok,
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def run_loadtest(address: str, clients: int, seconds: float, token: str | None = None, decode: bool = False,
                 movie: str | None = None, server_pid: int | None = None, max_streams: int = 1_000_000,
                 cache_dir=None) -> LoadReport:
    """Run ``clients`` concurrent playback loops for ``seconds``; see the module docstring."""
    check_loopback(address)
    if clients <= 0 or seconds <= 0:
        raise UsageError("--clients and --seconds must be positive")
    kwargs = {"cache_dir": cache_dir} if cache_dir else {}
    session = Session(address, token=token, timeout_s=30, retry_s=5, **kwargs)
    movies = [session.get_movie(movie)] if movie else [session.get_movie(m.id) for m in session.list_movies()]
    if not movies:
        raise UsageError("the server has no movies to stream")
    decoders = {}
    if decode:
        for m in movies:
            quant, parts, *_ = movie_side_information(m)
            # Streams at every point of the movie share one set: every scene's decoder stays built.
            decoders[m.id] = (session.decoders(m, parts, keep=len(parts) + 1)[0], quant)
    report = LoadReport(clients, seconds)
    lock = threading.Lock()
    cpu0 = proc_stats(server_pid)[0] if server_pid else None
    t_end = time.monotonic() + seconds
    stop = threading.Event()
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()

    def client(i: int) -> None:
        k = i
        streams = 0
        while time.monotonic() < t_end and streams < max_streams:
            m = movies[k % len(movies)]
            k += 1
            streams += 1
            start = (i * 7919 + streams * 104729) % m.frames  # spread starts over the movie
            expect = start
            stop_frame = m.frames
            t0 = time.monotonic()
            first = None
            frames = wire = payload = missing = dup = dec_n = 0
            dec_s = 0.0
            err = None
            call = session.stub.StreamLatents(pb.StreamLatentsRequest(movie=m.id, start_frame=start),
                                              metadata=metadata, timeout=seconds + 30)
            try:
                for chunk in call:
                    if first is None:
                        first = time.monotonic() - t0
                    wire += chunk.ByteSize()
                    payload += len(chunk.payload)
                    if chunk_checksum(chunk.start_frame, chunk.n_frames, chunk.payload) != chunk.checksum:
                        err = "CHECKSUM"
                        break
                    cs, ce = chunk.start_frame, chunk.start_frame + chunk.n_frames
                    missing += max(0, cs - expect)  # a gap before this chunk
                    # frames already delivered by this stream (the first chunk may start before
                    # `start` by design: chunks only decode whole)
                    dup += max(0, min(ce, expect) - max(cs, start))
                    lo, hi = max(cs, expect), ce
                    frames += max(0, hi - lo)
                    expect = max(expect, hi)
                    if decode:
                        dec, quant = decoders[m.id]
                        latents = chunk_latents(m, chunk, quant, lo, stop_frame)
                        t1 = time.perf_counter()
                        for out in decode_frames(dec, lo, latents, 16):
                            dec_n += len(out)
                        dec_s += time.perf_counter() - t1
                    if time.monotonic() > t_end + 5 or stop.is_set():
                        call.cancel()
                        break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    err = e.code().name
            if err is None and expect < stop_frame and time.monotonic() <= t_end + 5 and not stop.is_set():
                missing += stop_frame - expect
            with lock:
                report.streams += 1
                report.frames += frames
                report.wire_bytes += wire
                report.payload_bytes += payload
                report.missing += missing
                report.duplicated += dup
                report.decoded += dec_n
                report.decode_s += dec_s
                if first is not None:
                    report.first_chunk_s.append(first)
                if err:
                    report.errors[err] += 1

    def health() -> None:
        stub = health_pb2_grpc.HealthStub(session.channel)
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                report.health_s.append(time.monotonic() - t0)
            except grpc.RpcError:
                report.health_failures += 1
            stop.wait(0.1)

    threads = [threading.Thread(target=client, args=(i,), name=f"load-{i}", daemon=True) for i in range(clients)]
    prober = threading.Thread(target=health, name="load-health", daemon=True)
    t_start = time.monotonic()
    prober.start()
    [t.start() for t in threads]
    for t in threads:
        t.join(timeout=max(0.0, t_end + 60 - time.monotonic()))
    stop.set()
    prober.join(5)
    report.seconds = time.monotonic() - t_start
    if server_pid:
        cpu1, peak = proc_stats(server_pid)
        report.server_cpu_s, report.server_peak_rss = cpu1 - cpu0, peak
    session.close()
    return report

"""Concurrent playback streams against a server, with every frame accounted for.

Each of N client threads plays movies from the catalog again and again for T seconds (each
stream bounded by the movie's length, the whole run by T plus a grace period). For every
stream it checks that the chunks cover the requested frames exactly once. A separate thread
probes the health service every 100 ms.

``mix`` makes each stream one of what viewers do: play to the end, seek (a few chunks, then
from elsewhere), cancel after a few chunks, read slowly, or download the decoder whole.

``chaos`` makes the load test own the server: it starts ``latentcast serve`` on a store,
SIGKILLs it every so many seconds and starts it again on the same port. Streams then resume
from the first frame they lack, as the player does, and the accounting must still find every
frame exactly once. The server's memory is sampled throughout, so a leak shows as the last
minute's RSS above the first's.

Only loopback addresses are accepted: this is a tool for testing our own server, not anyone else's.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from latentcast.codec.format.address import is_loopback
from latentcast.codec.format.container import chunk_checksum
from latentcast.codec.format.errors import LatentcastError, UsageError
from latentcast.codec.runtime.decode import decode_frames
from latentcast.proto import latentcast_pb2 as pb

from .session import ServerError, Session, jittered, retryable
from .wire import chunk_latents, movie_side_information

# What viewers do, and how often a stream does it under --mix.
MIX = {"play": 0.45, "seek": 0.2, "cancel": 0.15, "slow": 0.1, "decoder": 0.1}
SLOW_PAUSE_S = (0.05, 0.25)  # a slow reader's pause per chunk: well under the server's stall watch
RESUME_S = 30.0  # under chaos, how long a stream keeps asking again before it counts as an error


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
    return cpu, _status_kb(pid, "VmHWM:") * 1024


def _status_kb(pid: int, key: str) -> int:
    """A /proc/PID/status figure in kB; 0 once the process is gone (killed under chaos)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


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
    behaviours: collections.Counter = field(default_factory=collections.Counter)  # --mix: streams of each kind
    decoder_downloads: int = 0
    reconnects: int = 0  # streams asked again after the server went away
    chaos: bool = False
    kills: int = 0
    restarts: int = 0
    restart_s: list[float] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the run, server RSS bytes)

    @property
    def ok(self) -> bool:
        # Under chaos the health probe fails by design while the server is down; every kill
        # must be followed by a server that came back.
        health_ok = self.chaos or not self.health_failures
        return not self.errors and not self.missing and not self.duplicated and health_ok and \
            self.restarts >= self.kills

    def rss_window_mb(self, first: bool, window_s: float = 60.0) -> float | None:
        """The server's largest RSS in the run's first (or last) ``window_s`` seconds, in MB."""
        if not self.rss:
            return None
        end = self.rss[-1][0]
        picked = [r for t, r in self.rss if (t <= window_s if first else t >= end - window_s)]
        return round(max(picked) / 2**20, 1) if picked else None

    def as_dict(self) -> dict:
        d = {
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
        }
        if self.behaviours:
            d["mix"] = dict(self.behaviours)
            d["decoder_downloads"] = self.decoder_downloads
        if self.chaos or self.reconnects:
            d["reconnects"] = self.reconnects
        if self.chaos:
            d.update(kills=self.kills, restarts=self.restarts,
                     restart_ms_max=_ms(max(self.restart_s)) if self.restart_s else None)
        if self.rss:
            d.update(server_rss_first_minute_mb=self.rss_window_mb(True),
                     server_rss_last_minute_mb=self.rss_window_mb(False))
        d["ok"] = self.ok
        return d


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


@dataclass
class _Tally:
    """What one stream (one or more requests) brought."""

    frames: int = 0
    wire: int = 0
    payload: int = 0
    missing: int = 0
    dup: int = 0
    decoded: int = 0
    decode_s: float = 0.0
    reconnects: int = 0
    first: float | None = None
    err: str | None = None


class _EndedEarly(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChaosServer:
    """``latentcast serve`` on ``store`` as a child process, killed with SIGKILL every
    ``every_s`` seconds and started again on the same port."""

    def __init__(self, store: str | Path, every_s: float, clients: int, log_path: Path | None = None,
                 max_lead_s: float = 0.0):
        if every_s <= 0:
            raise UsageError("--chaos-kill needs a positive number of seconds")
        if not Path(store, "catalog.sqlite").exists():
            raise UsageError(f"{store} is not a latentcast store (no catalog.sqlite)")
        self.store, self.every_s = str(store), every_s
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # The load test is one peer: without room per client its own streams would be refused.
        room = str(max(128, 2 * clients + 8))
        self.args = [sys.executable, "-m", "latentcast", "serve", "--store", self.store, "--listen", self.address,
                     "--max-streams-per-client", room, "--max-streams", room, "--grace", "0",
                     "--max-lead", str(max_lead_s)]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.kills = self.restarts = 0
        self.restart_s: list[float] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout_s: float = 60.0) -> float:
        """Start the server and wait until its health service answers; returns the seconds that took."""
        t0 = time.monotonic()
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=out)
        if out is not subprocess.DEVNULL:
            out.close()
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise LatentcastError(f"the server exited with {self.proc.returncode} on start "
                                          f"({' '.join(self.args[2:])})")
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic() - t0
                except grpc.RpcError:
                    pass
                if time.monotonic() - t0 > timeout_s:
                    self.stop()
                    raise LatentcastError(f"the server did not answer within {timeout_s:.0f} s of its start")
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def run(self, stop: threading.Event) -> None:
        """Kill and restart until ``stop`` is set."""
        while not stop.wait(self.every_s):
            self.kill()
            try:
                self.restart_s.append(self.start())
                self.restarts += 1
            except LatentcastError:
                return  # reported as kills > restarts

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _Load:
    """The client threads' shared state and the stream they run."""

    def __init__(self, session: Session, movies: list[pb.Movie], report: LoadReport, token: str | None,
                 decode: bool, resume: bool, t_end: float):
        self.session, self.movies, self.report = session, movies, report
        self.metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
        self.decode, self.resume, self.t_end = decode, resume, t_end
        self.decoders: dict[str, tuple] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def over(self) -> bool:
        return time.monotonic() > self.t_end + 5 or self.stop.is_set()

    def stream(self, m: pb.Movie, start: int, tally: _Tally, max_chunks: int = 0, pause_s: float = 0.0) -> None:
        """Frames [start, end of movie) into ``tally``; ``max_chunks`` > 0 cancels after that
        many chunks (a viewer who stops or seeks), and no frame after it is owed."""
        stop_frame, expect, asked_from = m.frames, start, start
        t0 = time.monotonic()
        chunks, delay, give_up_at = 0, 0.1, None
        while expect < stop_frame:
            call = self.session.stub.StreamLatents(
                pb.StreamLatentsRequest(movie=m.id, start_frame=asked_from, frame_count=stop_frame - asked_from),
                metadata=self.metadata, timeout=self.t_end - time.monotonic() + 30)
            try:
                for chunk in call:
                    if tally.first is None:
                        tally.first = time.monotonic() - t0
                    tally.wire += chunk.ByteSize()
                    tally.payload += len(chunk.payload)
                    if chunk_checksum(chunk.start_frame, chunk.n_frames, chunk.payload) != chunk.checksum:
                        tally.err = "CHECKSUM"
                        return
                    cs, ce = chunk.start_frame, chunk.start_frame + chunk.n_frames
                    tally.missing += max(0, cs - expect)  # a gap before this chunk
                    # Frames this stream already had, from the frame this request asked for on: a
                    # request's first chunk may start before it by design (chunks decode whole).
                    tally.dup += max(0, min(ce, expect) - max(cs, asked_from))
                    lo = max(cs, expect)
                    tally.frames += max(0, ce - lo)
                    expect = max(expect, ce)
                    give_up_at, delay = None, 0.1  # progress: the resume window starts over
                    if self.decode:
                        self._decode(m, chunk, lo, stop_frame, tally)
                    chunks += 1
                    if (max_chunks and chunks >= max_chunks) or self.over():
                        call.cancel()
                        return
                    if pause_s:
                        time.sleep(pause_s)
                if expect >= stop_frame:
                    return
                raise _EndedEarly()  # a server going away may close the stream cleanly
            except (grpc.RpcError, _EndedEarly) as e:
                ended = isinstance(e, _EndedEarly)
                code = grpc.StatusCode.UNAVAILABLE if ended else e.code()
                details = "" if ended else (e.details() or "")
                if self.over():
                    return
                if not (self.resume and (retryable(code, details) or code == grpc.StatusCode.CANCELLED)):
                    if ended or code == grpc.StatusCode.CANCELLED:  # closed under it: what it lacks is owed
                        tally.missing += stop_frame - expect
                    else:
                        tally.err = code.name
                    return
                give_up_at = give_up_at or time.monotonic() + RESUME_S
                if time.monotonic() > give_up_at:
                    tally.err = f"{code.name} for {RESUME_S:.0f} s"
                    return
                tally.reconnects += 1
                time.sleep(jittered(delay))
                delay = min(2 * delay, 2.0)
                asked_from = expect  # ask again from the first frame it lacks

    def _decode(self, m: pb.Movie, chunk: pb.LatentChunk, lo: int, stop_frame: int, tally: _Tally) -> None:
        dec, quant = self.decoders[m.id]
        latents = chunk_latents(m, chunk, quant, lo, stop_frame)
        t1 = time.perf_counter()
        for out in decode_frames(dec, lo, latents, 16):
            tally.decoded += len(out)
        tally.decode_s += time.perf_counter() - t1

    def download_decoder(self, m: pb.Movie, tally: _Tally) -> bool:
        """The movie's decoder, whole, checked against its sha256 (retried while the server is away)."""
        try:
            self.session.fetch_decoder(m.decoder_sha256)
        except (ServerError, LatentcastError) as e:
            tally.err = e.code.name if isinstance(e, ServerError) else "DECODER"
            return False
        return True

    def add(self, tally: _Tally, behaviour: str | None, downloaded: bool = False) -> None:
        r = self.report
        with self.lock:
            r.streams += 1
            r.frames += tally.frames
            r.wire_bytes += tally.wire
            r.payload_bytes += tally.payload
            r.missing += tally.missing
            r.duplicated += tally.dup
            r.decoded += tally.decoded
            r.decode_s += tally.decode_s
            r.reconnects += tally.reconnects
            r.decoder_downloads += downloaded
            if behaviour:
                r.behaviours[behaviour] += 1
            if tally.first is not None:
                r.first_chunk_s.append(tally.first)
            if tally.err:
                r.errors[tally.err] += 1


def run_loadtest(address: str | None, clients: int, seconds: float, token: str | None = None, decode: bool = False,
                 movie: str | None = None, server_pid: int | None = None, max_streams: int = 1_000_000,
                 cache_dir=None, mix: bool = False, chaos_kill_s: float | None = None, store=None,
                 seed: int = 0, server_log: Path | None = None, max_lead_s: float = 0.0) -> LoadReport:
    """Run ``clients`` concurrent playback loops for ``seconds``; see the module docstring.
    With ``chaos_kill_s`` the load test starts the server on ``store`` itself (``address`` unused),
    pacing its streams to ``max_lead_s`` ahead of real time (0: unpaced)."""
    if clients <= 0 or seconds <= 0:
        raise UsageError("--clients and --seconds must be positive")
    chaos = None
    if chaos_kill_s is not None:
        if store is None:
            raise UsageError("--chaos-kill starts the server itself: give --store")
        chaos = ChaosServer(store, chaos_kill_s, clients, server_log, max_lead_s)
        chaos.start()
        address = chaos.address
    check_loopback(address)
    try:
        return _run(address, clients, seconds, token, decode, movie, server_pid, max_streams, cache_dir, mix, chaos,
                    seed)
    finally:
        if chaos is not None:
            chaos.stop()


def _run(address, clients, seconds, token, decode, movie, server_pid, max_streams, cache_dir, mix, chaos,
         seed) -> LoadReport:
    kwargs = {"cache_dir": cache_dir} if cache_dir else {}
    session = Session(address, token=token, timeout_s=30, retry_s=RESUME_S, **kwargs)
    movies = [session.get_movie(movie)] if movie else [session.get_movie(m.id) for m in session.list_movies()]
    if not movies:
        raise UsageError("the server has no movies to stream")
    report = LoadReport(clients, seconds, chaos=chaos is not None)
    load = _Load(session, movies, report, token, decode, resume=chaos is not None, t_end=time.monotonic() + seconds)
    if decode:
        for m in movies:
            quant, parts, *_ = movie_side_information(m)
            # Streams at every point of the movie share one set: every scene's decoder stays built.
            load.decoders[m.id] = (session.decoders(m, parts, keep=len(parts) + 1)[0], quant)
    pid_now = (lambda: chaos.pid) if chaos is not None else (lambda: server_pid)
    cpu0 = proc_stats(server_pid)[0] if server_pid and chaos is None else None
    kinds, weights = list(MIX), list(MIX.values())

    def client(i: int) -> None:
        rng = random.Random(seed * 1_000_003 + i)
        k = i
        streams = 0
        while time.monotonic() < load.t_end and streams < max_streams:
            m = movies[k % len(movies)]
            k += 1
            streams += 1
            start = (i * 7919 + streams * 104729) % m.frames  # spread starts over the movie
            tally = _Tally()
            behaviour = rng.choices(kinds, weights)[0] if mix else None
            if behaviour == "decoder":
                load.add(tally, behaviour, downloaded=load.download_decoder(m, tally))
                continue
            if behaviour == "seek":  # a few chunks, then on from a frame elsewhere in the movie
                load.stream(m, start, tally, max_chunks=rng.randint(1, 3))
                start = rng.randrange(m.frames)
            load.stream(m, start, tally, max_chunks=rng.randint(1, 3) if behaviour == "cancel" else 0,
                        pause_s=rng.uniform(*SLOW_PAUSE_S) if behaviour == "slow" else 0.0)
            load.add(tally, behaviour)

    def health() -> None:
        stub = health_pb2_grpc.HealthStub(session.channel)
        while not load.stop.is_set():
            t0 = time.monotonic()
            try:
                stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                report.health_s.append(time.monotonic() - t0)
            except grpc.RpcError:
                report.health_failures += 1
            load.stop.wait(0.1)

    def sample_rss() -> None:
        while not load.stop.is_set():
            pid = pid_now()
            kb = _status_kb(pid, "VmRSS:") if pid else 0
            if kb:
                report.rss.append((time.monotonic() - t_start, kb * 1024))
            load.stop.wait(1.0)

    threads = [threading.Thread(target=client, args=(i,), name=f"load-{i}", daemon=True) for i in range(clients)]
    helpers = [threading.Thread(target=health, name="load-health", daemon=True),
               threading.Thread(target=sample_rss, name="load-rss", daemon=True)]
    chaos_stop = threading.Event()
    if chaos is not None:
        helpers.append(threading.Thread(target=chaos.run, args=(chaos_stop,), name="load-chaos", daemon=True))
    t_start = time.monotonic()
    [t.start() for t in helpers + threads]
    for t in threads:
        t.join(timeout=max(0.0, load.t_end + 60 - time.monotonic()))
    chaos_stop.set()
    load.stop.set()
    [t.join(65 if chaos is not None else 5) for t in helpers]
    report.seconds = time.monotonic() - t_start
    if chaos is not None:
        report.kills, report.restarts, report.restart_s = chaos.kills, chaos.restarts, chaos.restart_s
    elif server_pid:
        cpu1, peak = proc_stats(server_pid)
        report.server_cpu_s, report.server_peak_rss = cpu1 - cpu0, peak
    session.close()
    return report

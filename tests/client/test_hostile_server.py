"""A server that lies, one way at a time: the viewer gets one clear line and a non-zero exit,
never a traceback, and nothing lands outside its cache or damaged inside it."""

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Callable

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentcast.client.checks import FIELDS, check_latent_chunk, check_movie, printable
from latentcast.client.wire import chunk_latents, movie_side_information
from latentcast.codec.format.container import chunk_checksum
from latentcast.codec.format.decoder_file import sha256_bytes
from latentcast.codec.format.errors import LatentcastError
from latentcast.commands import list as list_cmd
from latentcast.commands import play
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc
from latentcast.server.service import LatentcastServicer


@dataclasses.dataclass(frozen=True)
class Lie:
    name: str
    movie: Callable = lambda m: None
    decoder: Callable = lambda c, i: None  # (chunk, index)
    latents: Callable = lambda c: None


def _rechecksummed(fn):
    """A chunk lie that keeps the checksum right, so only the bounds can catch it."""
    def lie(c):
        fn(c)
        c.checksum = chunk_checksum(c.start_frame & 0xFFFFFFFF, c.n_frames & 0xFFFFFFFF, c.payload)
    return lie


def _first(fn):
    return lambda c, i: fn(c) if i == 0 else None


def _setattr(name, value):
    return lambda m: setattr(m, name, value)


def _huge_layers(c):
    config = json.loads(c.config_json)
    config["stem_channels"] = 1 << 20
    c.config_json = json.dumps(config)


LIES = [
    Lie("an empty decoder hash", movie=_setattr("decoder_sha256", "")),
    Lie("a path for a decoder hash", movie=_setattr("decoder_sha256", "../../../../tmp/evil")),
    Lie("a zero fps denominator", movie=_setattr("fps_den", 0)),
    Lie("a zero width", movie=_setattr("width", 0)),
    Lie("a trillion frames", movie=_setattr("frames", 1 << 40)),
    Lie("a million latent values", movie=_setattr("latent_dim", 1 << 20)),
    Lie("chunks of 8 million frames", movie=_setattr("chunk_frames", 1 << 23)),
    Lie("a NaN bitrate", movie=_setattr("total_kbps", math.nan)),
    Lie("a duration that does not add up", movie=_setattr("duration_s", 1e6)),
    Lie("a decoder of 1 TiB", decoder=_first(_setattr("total_bytes", 1 << 40))),
    Lie("a decoder that inflates to 1 TiB", decoder=_first(_setattr("decoded_bytes", 1 << 40))),
    Lie("a decoder config of huge layers", decoder=_first(_huge_layers)),
    Lie("an unknown decoder encoding", decoder=_first(_setattr("encoding", "gzip"))),
    Lie("decoder bytes that are not the decoder", decoder=_first(lambda c: setattr(c, "data", c.data[::-1]))),
    Lie("a chunk of a million frames", latents=_rechecksummed(_setattr("n_frames", 1 << 20))),
    Lie("a chunk past the movie's end", latents=_rechecksummed(_setattr("start_frame", 10_000))),
    Lie("a chunk of garbage", latents=_rechecksummed(_setattr("payload", b"\x28\xb5\x2f\xfd" + b"\x00" * 60))),
]


class LyingServicer(LatentcastServicer):
    def __init__(self, store, lie: Lie):
        super().__init__(store)
        self.lie = lie

    def ListMovies(self, request, context):
        answer = super().ListMovies(request, context)
        for m in answer.movies:
            self.lie.movie(m)
        return answer

    def GetMovie(self, request, context):
        m = super().GetMovie(request, context)
        self.lie.movie(m)
        return m

    def GetDecoder(self, request, context):
        for i, chunk in enumerate(super().GetDecoder(request, context)):
            self.lie.decoder(chunk, i)
            yield chunk

    def StreamLatents(self, request, context):
        for chunk in super().StreamLatents(request, context):
            self.lie.latents(chunk)
            yield chunk


class LyingServer:
    def __init__(self, store, lie: Lie):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.servicer = LyingServicer(store, lie)
        pb_grpc.add_LatentcastServicer_to_server(self.servicer, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(0).wait()
        self.servicer.close()


def _cache_is_sound(cache: Path) -> None:
    for f in cache.glob("*.safetensors") if cache.exists() else ():
        assert sha256_bytes(f.read_bytes()) == f.stem, f
    assert not list(cache.parent.glob("**/evil*"))


@pytest.mark.parametrize("lie", LIES, ids=[lie.name for lie in LIES])
def test_each_lie_is_one_clear_line_and_nothing_damaged(lie, store_with_movie, tmp_path, capsys):
    store, rec = store_with_movie
    cache = tmp_path / "cache"
    with LyingServer(store, lie) as srv:
        code = play.main([rec.id, "--server", srv.address, "-o", str(tmp_path / "out.mkv"), "--cache-dir", str(cache),
                          "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("latentcast play: error:"), err
    _cache_is_sound(cache)


def test_a_truthful_server_through_the_same_harness_plays(store_with_movie, tmp_path, capsys):
    store, rec = store_with_movie
    with LyingServer(store, Lie("none")) as srv:
        assert play.main([rec.id, "--server", srv.address, "-o", str(tmp_path / "out.mkv"),
                          "--cache-dir", str(tmp_path / "c"), "-q"]) == 0


BOMBS = ["a decoder of 1 TiB", "a decoder that inflates to 1 TiB", "a decoder config of huge layers",
         "a chunk of a million frames", "chunks of 8 million frames"]


def _run_with_peak(cmd: list[str], timeout_s: float) -> tuple[int, str, int]:
    """Run ``cmd``: its exit code, its stderr, and its own peak RSS in KiB. RUSAGE_CHILDREN would
    give the largest of every child this test process has reaped so far, not this one's."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    try:
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return proc.returncode, err, usage.ru_maxrss


@pytest.mark.parametrize("lie", [lie for lie in LIES if lie.name in BOMBS], ids=BOMBS)
def test_a_lie_about_sizes_costs_the_client_under_a_gigabyte(lie, store_with_movie, tmp_path):
    store, rec = store_with_movie
    with LyingServer(store, lie) as srv:
        code, err, peak_kib = _run_with_peak([sys.executable, "-m", "latentcast", "play", rec.id, "--server",
                                              srv.address, "-o", str(tmp_path / "out.mkv"), "--cache-dir",
                                              str(tmp_path / "c"), "-q"], timeout_s=120)
    assert code == 1 and "Traceback" not in err, err
    assert peak_kib < 1 << 20  # KiB: under 1 GiB


def test_a_title_cannot_drive_the_terminal(store_with_movie, capsys):
    store, rec = store_with_movie
    evil = "\x1b[2J\x1b]0;owned\x07 Shapes\u202e"
    with LyingServer(store, Lie("title", movie=_setattr("title", evil))) as srv:
        assert list_cmd.main(["--server", srv.address]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert printable(evil) in out and "Shapes" in out


def test_every_field_the_client_reads_has_a_named_check():
    for message, checks in FIELDS.items():
        assert set(message.DESCRIPTOR.fields_by_name) == set(checks), message.DESCRIPTOR.name
    # and every answer the service gives has its table: a method added later fails here too
    checked = {m.DESCRIPTOR.full_name for m in FIELDS}
    for method in pb.DESCRIPTOR.services_by_name["Latentcast"].methods:
        assert method.output_type.full_name in checked, method.name


def _movie_values(field):
    kinds = {field.TYPE_STRING: st.text(max_size=80), field.TYPE_BYTES: st.binary(max_size=200),
             field.TYPE_BOOL: st.booleans(), field.TYPE_DOUBLE: st.floats(allow_nan=True),
             field.TYPE_FLOAT: st.floats(width=32, allow_nan=True)}
    if field.type in kinds:
        return kinds[field.type]
    bits = 32 if field.type == field.TYPE_UINT32 else 64
    return st.one_of(st.integers(0, 64), st.integers(0, (1 << bits) - 1))


@st.composite
def _lying_movies(draw, truth: pb.Movie):
    m = pb.Movie()
    m.CopyFrom(truth)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(list(pb.Movie.DESCRIPTOR.fields)))
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if repeated:
            values = draw(st.lists(_movie_values(field), max_size=4))
            getattr(m, field.name)[:] = values
        else:
            setattr(m, field.name, draw(_movie_values(field)))
    return m


@pytest.fixture(scope="module")
def truth(store_with_movie):
    store, rec = store_with_movie
    with LyingServer(store, Lie("none")) as srv, grpc.insecure_channel(srv.address) as ch:
        stub = pb_grpc.LatentcastStub(ch)
        movie = stub.GetMovie(pb.GetMovieRequest(movie=rec.id))
        chunk = next(iter(stub.StreamLatents(pb.StreamLatentsRequest(movie=rec.id))))
    return movie, chunk


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_lie_in_a_movie_or_chunk_is_refused_or_handled(truth, data):
    """Whatever a movie description or first chunk says, the client's handlers either accept it
    or raise a LatentcastError: no other exception, so never a traceback."""
    movie, chunk = truth
    lying = data.draw(_lying_movies(movie))
    try:
        check_movie(lying)
        quantizer = movie_side_information(lying).quantizer
        c = pb.LatentChunk()
        c.CopyFrom(chunk)
        if data.draw(st.booleans()):
            c.n_frames = data.draw(st.integers(0, (1 << 32) - 1))
            c.start_frame = data.draw(st.integers(0, 64))
        check_latent_chunk(c, lying, 0, lying.frames)
        chunk_latents(lying, c, quantizer, 0, lying.frames)
    except LatentcastError as e:
        assert "\n" not in str(e)

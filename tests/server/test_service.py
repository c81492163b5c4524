"""The gRPC service against an in-process server on 127.0.0.1, port 0."""

import dataclasses
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from latentcast.client.player import play
from latentcast.client.session import ServerError, Session
from latentcast.codec import video
from latentcast.codec.format.chunks import encode_chunk
from latentcast.codec.format.container import Container, MovieHeader, write_container
from latentcast.codec.format.decoder_file import compress_decoder
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.service import Limits
from latentcast.server.store import Store
from synthetic import damage_chunk


@pytest.fixture(scope="module")
def server(store_with_movie):
    store, _rec = store_with_movie
    with run_server(store, ServerOptions(limits=Limits(max_frames_per_request=1000))) as srv:
        yield srv


@pytest.fixture
def stub(server):
    # One channel per test, closed at its end, rather than one left for the garbage collector.
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.LatentcastStub(channel)


def _session(srv, tmp_path, **kw):
    return Session(srv.address, cache_dir=tmp_path / "cache", retry_s=2.0, **kw)


def _frames(path):
    return np.stack(list(video.read_frames(path)))


def test_play_equals_offline_decode(server, store_with_movie, offline_frames, tmp_path):
    store, rec = store_with_movie
    with _session(server, tmp_path) as s:
        summary = play(s, "Shapes", str(tmp_path / "out.mkv"), progress=False)
    assert np.array_equal(_frames(tmp_path / "out.mkv"), offline_frames)
    assert summary.frames == 24 and summary.decoder_downloaded
    # It received the coded file and its config; the catalog's count is the larger of that config
    # and the browser's graph, so no viewer's first view exceeds what `total` says.
    wire, config, _ = store.decoder_bytes(rec.decoder_sha256)
    assert len(wire) + len(config.encode()) <= summary.decoder_bytes <= rec.decoder_bytes + 100  # + message framing
    # bytes on the wire: each chunk message carries its payload plus a few bytes of framing
    assert rec.chunk_bytes * 0.8 < summary.latent_bytes < rec.chunk_bytes * 1.2
    # the side information (the GetMovie answer) counts in the streaming rate, the decoder in the total
    assert rec.side_bytes < summary.side_bytes < rec.side_bytes + 400
    seconds = summary.frames / 12
    assert summary.streaming_kbps == pytest.approx((summary.side_bytes + summary.latent_bytes) * 8 / seconds / 1000)
    assert summary.total_kbps == pytest.approx(summary.streaming_kbps + summary.decoder_bytes * 8 / seconds / 1000)
    # a second play uses the cached decoder; its total still counts what a first view downloads
    with _session(server, tmp_path) as s:
        again = play(s, rec.id, str(tmp_path / "again.mkv"), progress=False)
    assert not again.decoder_downloaded and again.decoder_bytes == rec.decoder_bytes
    assert again.total_kbps > again.streaming_kbps


@pytest.mark.parametrize("start,count", [(0, 1), (5, 7), (22, None), (3, 100)])
def test_seeking(server, offline_frames, tmp_path, start, count):
    with _session(server, tmp_path) as s:
        play(s, "Shapes", str(tmp_path / "part.mkv"), start=start, count=count, progress=False)
    stop = 24 if count is None else min(24, start + count)
    assert np.array_equal(_frames(tmp_path / "part.mkv"), offline_frames[start:stop])


def test_list_and_describe(server, store_with_movie, tmp_path):
    _, rec = store_with_movie
    with _session(server, tmp_path) as s:
        movies = s.list_movies()
        m = s.get_movie(rec.id)
    assert [x.id for x in movies] == [rec.id]
    assert m.frames == 24 and m.width == 64 and m.latent_dim == 64
    # the ranges travel in the side information, the container header byte for byte
    header = MovieHeader.from_bytes(m.header)
    assert header.latent_dim == 64 and len(m.header) == rec.side_bytes and not m.quant_lo
    assert m.streaming_kbps == pytest.approx(rec.streaming_bytes * 8 / 2 / 1000)  # 24 frames at 12 fps
    assert m.total_kbps == pytest.approx((rec.streaming_bytes + rec.decoder_bytes) * 8 / 2 / 1000)
    assert movies[0].total_kbps == m.total_kbps and not movies[0].header  # the list leaves it out
    assert m.symbols_packed


def test_not_found_and_bad_ranges(server, stub, tmp_path):

    def code(fn, req):
        with pytest.raises(grpc.RpcError) as err:
            r = fn(req, timeout=5)
            list(r) if not isinstance(r, pb.Movie) else None
        return err.value.code()

    assert code(stub.GetMovie, pb.GetMovieRequest(movie="nope")) == grpc.StatusCode.NOT_FOUND
    assert code(stub.GetMovie, pb.GetMovieRequest(movie="../../etc/passwd")) == grpc.StatusCode.NOT_FOUND
    assert code(stub.GetDecoder, pb.GetDecoderRequest(sha256="0" * 64)) == grpc.StatusCode.NOT_FOUND
    assert code(stub.StreamLatents, pb.StreamLatentsRequest(movie="Shapes", start_frame=24)) == \
        grpc.StatusCode.OUT_OF_RANGE
    assert code(stub.StreamLatents, pb.StreamLatentsRequest(movie="Shapes", frame_count=5000)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code(stub.GetMovie, pb.GetMovieRequest(movie="x" * 5000)) == grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_request_is_refused_and_server_keeps_serving(server, stub, tmp_path):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetMovie(pb.GetMovieRequest(movie="x" * (10 << 20)), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.GetMovie(pb.GetMovieRequest(movie="Shapes"), timeout=5).frames == 24


def test_tokens(store_with_movie, tmp_path):
    store, _ = store_with_movie
    with run_server(store, ServerOptions(tokens=["s3cret", "other"])) as srv:
        for token, why in ((None, "missing bearer token"), ("", "empty bearer token"), ("wrong", "invalid")):
            with _session(srv, tmp_path, token=token) as s, pytest.raises(ServerError) as err:
                s.list_movies()
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED and why in err.value.details
        with _session(srv, tmp_path, token="s3cret") as s:
            assert len(s.list_movies()) == 1
        with _session(srv, tmp_path, token="wrong") as s, pytest.raises(ServerError) as err:
            list(s.stream_latents(s.get_movie("Shapes"), 0, 24))
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        # health answers without a token
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(srv.address))
        resp = health.Check(health_pb2.HealthCheckRequest(service="latentcast.v1.Latentcast"), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_version_1_movie_still_streams(trained_model, clip, offline_frames, tmp_path):
    """A movie stored before payloads were packed (one symbol a byte) plays to the same frames."""
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(clip), trained_model, title="old", chunk_seconds=0.25, progress=False)
    path = store.movie_path(rec.id)
    with Container(path) as c:
        header = dataclasses.replace(c.header, version=1)
        chunks = [(e.start, e.n_frames, encode_chunk(c.read_chunk(i), header.bits, packed=False))
                  for i, e in enumerate(c.chunks)]
    write_container(path, header, chunks)
    with run_server(store) as srv, _session(srv, tmp_path) as s:
        assert not s.get_movie(rec.id).symbols_packed
        play(s, "old", str(tmp_path / "old.mkv"), progress=False)
    assert np.array_equal(_frames(tmp_path / "old.mkv"), offline_frames)


def test_corrupt_container_is_data_loss_while_other_movie_streams(trained_model, clip, tmp_path):
    store = Store(tmp_path / "s", create=True)
    store.ingest(str(clip), trained_model, title="good", chunk_seconds=0.25, progress=False)
    bad = store.ingest(str(clip), trained_model, title="bad", chunk_seconds=0.25, progress=False)
    damage_chunk(store, bad.id, 4)
    with run_server(store) as srv:
        results = {}

        def run(name):
            try:
                with _session(srv, tmp_path / name) as s:
                    results[name] = play(s, name, str(tmp_path / f"{name}.mkv"), progress=False).frames
            except ServerError as e:
                results[name] = e

        threads = [threading.Thread(target=run, args=(n,)) for n in ("good", "bad")]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
        # the rest of the damaged movie still plays: before and after the bad chunk
        with _session(srv, tmp_path / "rest") as s:
            assert play(s, "bad", str(tmp_path / "after.mkv"), start=15, progress=False).frames == 9
            assert play(s, "bad", str(tmp_path / "before.mkv"), count=12, progress=False).frames == 12
    assert results["good"] == 24
    assert isinstance(results["bad"], ServerError) and results["bad"].code == grpc.StatusCode.DATA_LOSS
    assert "frames 12-14" in results["bad"].details
    assert not (tmp_path / "bad.mkv").exists()


def test_client_that_disconnects_leaves_no_stream_behind(server, tmp_path):
    before = {t.name for t in threading.enumerate()}
    channel = grpc.insecure_channel(server.address)
    stub = pb_grpc.LatentcastStub(channel)
    call = stub.StreamLatents(pb.StreamLatentsRequest(movie="Shapes"))
    next(call)
    assert server.servicer.active_streams == 1
    call.cancel()
    channel.close()
    deadline = time.monotonic() + 10
    while server.servicer.active_streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.servicer.active_streams == 0
    # gRPC's pool keeps idle workers; what matters is that none is still inside our stream
    leftover = {t.name for t in threading.enumerate()} - before
    assert not any("receive" in n for n in leftover)


def test_sixteen_concurrent_clients(server, offline_frames, tmp_path):
    errors, done = [], []

    def run(i):
        try:
            with _session(server, tmp_path / f"c{i}") as s:
                play(s, "Shapes", str(tmp_path / f"c{i}.mkv"), progress=False)
            done.append(i)
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(16)]
    [t.start() for t in threads]
    deadline = time.monotonic() + 180  # one deadline for all, not 120 s for each in turn
    [t.join(max(0.0, deadline - time.monotonic())) for t in threads]
    assert not errors and len(done) == 16, (errors, sorted(done))
    for i in range(16):
        assert np.array_equal(_frames(tmp_path / f"c{i}.mkv"), offline_frames)


def test_tampered_decoder_on_server_is_refused(store_with_movie, trained_model, clip, tmp_path):
    src, _ = store_with_movie
    root = tmp_path / "copy"
    shutil.copytree(src.root, root)
    store = Store(root)
    rec = store.list()[0]
    raw = bytearray(store.decoder_path(rec.decoder_sha256).read_bytes())
    raw[-3] ^= 1
    # what the server sends is the zstd copy: tamper with it so it still decompresses
    store.decoder_wire_path(rec.decoder_sha256).write_bytes(compress_decoder(bytes(raw)))
    with run_server(store) as srv, _session(srv, tmp_path) as s:
        with pytest.raises(Exception, match="sha256 mismatch"):
            play(s, rec.id, str(tmp_path / "x.mkv"), progress=False)
    store.decoder_wire_path(rec.decoder_sha256).write_bytes(b"\x28\xb5\x2f\xfd garbage")
    # a new server: a running one keeps the copy it read in memory
    with run_server(store) as srv, _session(srv, tmp_path) as s:
        with pytest.raises(Exception, match="does not decompress"):
            play(s, rec.id, str(tmp_path / "x.mkv"), progress=False)
    assert not list((tmp_path / "cache").glob("*.safetensors"))
    assert not (tmp_path / "x.mkv").exists()

"""Server resources a client cannot hold without limit: paged listings, per-client stream
slots that a random authorization header cannot multiply, decoder downloads admitted like
streams and served from memory; and the client's backoff and retry rules."""

import time

import grpc
import pytest

from latentcast.client.session import ServerError, Session, jittered, retryable
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.service import Limits
from latentcast.server.store import Store


@pytest.fixture(scope="module")
def three_movies(tmp_path_factory, trained_model, clip):
    store = Store(tmp_path_factory.mktemp("three") / "s", create=True)
    ids = [store.ingest(str(clip), trained_model, title=f"m{i}", progress=False).id for i in range(3)]
    return store, ids


def test_the_movie_list_comes_in_pages_that_stay_right_while_movies_are_added(three_movies, trained_model, clip,
                                                                             tmp_path):
    store, ids = three_movies
    with run_server(store) as srv, grpc.insecure_channel(srv.address) as ch:
        stub = pb_grpc.LatentcastStub(ch)
        first = stub.ListMovies(pb.ListMoviesRequest(page_size=2))
        assert [m.id for m in first.movies] == ids[:2] and first.next_page_token
        last = stub.ListMovies(pb.ListMoviesRequest(page_size=2, page_token=first.next_page_token))
        assert [m.id for m in last.movies] == ids[2:] and not last.next_page_token
        for bad in ("nonsense", "W10=", "x" * 50):
            with pytest.raises(grpc.RpcError) as err:
                stub.ListMovies(pb.ListMoviesRequest(page_token=bad))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with run_server(store) as srv, Session(srv.address, cache_dir=tmp_path / "c") as s:
        assert [m.id for m in s.list_movies()] == ids


def _hold_a_stream(address: str, auth: str):
    channel = grpc.insecure_channel(address)
    call = pb_grpc.LatentcastStub(channel).StreamLatents(pb.StreamLatentsRequest(movie="Shapes"),
                                                        metadata=(("authorization", f"Bearer {auth}"),))
    next(call)
    return channel, call


def _refused(address: str, auth: str, decoder: str | None = None) -> grpc.StatusCode | None:
    """The status a stream (or with ``decoder``, that decoder's download) is refused with, if any."""
    with grpc.insecure_channel(address) as ch:
        stub = pb_grpc.LatentcastStub(ch)
        md = (("authorization", f"Bearer {auth}"),)
        call = (stub.GetDecoder(pb.GetDecoderRequest(sha256=decoder), metadata=md) if decoder
                else stub.StreamLatents(pb.StreamLatentsRequest(movie="Shapes"), metadata=md))
        try:
            next(call)
            return None
        except grpc.RpcError as e:
            return e.code()


@pytest.mark.parametrize("tokens", [[], ["a", "b"]])
def test_per_client_slots_key_on_the_token_only_when_tokens_exist(store_with_movie, tokens):
    store, rec = store_with_movie
    # Paced to real time, the 2-second movie keeps the first stream open while the others ask.
    opts = ServerOptions(tokens=tokens, limits=Limits(max_streams_per_client=1, max_lead_s=0.1))
    with run_server(store, opts) as srv:
        channel, call = _hold_a_stream(srv.address, "a")
        try:
            # Without tokens "b" is the same client as "a" (one address); with tokens it is another.
            expected = None if tokens else grpc.StatusCode.RESOURCE_EXHAUSTED
            assert _refused(srv.address, "b") == expected
            # A decoder download takes a slot as a stream does.
            assert _refused(srv.address, "a", rec.decoder_sha256) == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            call.cancel()
            channel.close()


def test_decoders_are_served_from_memory_once_read(store_with_movie, tmp_path):
    import shutil

    store, rec = store_with_movie
    copy = Store(shutil.copytree(store.root, tmp_path / "s"))
    with run_server(copy) as srv:
        with Session(srv.address, cache_dir=tmp_path / "c1") as s:
            s.decoders(s.get_movie(rec.id))[0].close()
        copy.decoder_wire_path(rec.decoder_sha256).unlink()  # the second view never reads the disk
        with Session(srv.address, cache_dir=tmp_path / "c2") as s:
            s.decoders(s.get_movie(rec.id))[0].close()


def test_backoff_is_jittered_and_a_message_over_our_own_cap_is_not_retried():
    delays = [jittered(1.0) for _ in range(50)]
    assert all(0.5 <= d < 1.0 for d in delays) and len(set(delays)) > 40
    assert retryable(grpc.StatusCode.UNAVAILABLE, "")
    assert retryable(grpc.StatusCode.RESOURCE_EXHAUSTED, "at most 32 concurrent streams per client")
    assert not retryable(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (9437270 vs. 8388608)")


def test_an_oversized_answer_fails_at_once_instead_of_retrying(store_with_movie, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "client"))
    from test_hostile_server import Lie, LyingServer

    store, rec = store_with_movie
    with LyingServer(store, Lie("9 MB title", movie=lambda m: setattr(m, "title", "x" * (9 << 20)))) as srv, \
            Session(srv.address, cache_dir=tmp_path / "c", retry_s=20) as s:
        t = time.monotonic()
        with pytest.raises(ServerError) as err:
            s.get_movie(rec.id)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() - t < 5


@pytest.fixture(scope="module")
def heavy_store(tmp_path_factory, store_with_movie):
    """The test movie's catalog entry with a container of incompressible 64 kB frames in place of
    its own: enough bytes to fill every flow-control window between a server and a client that
    stops reading."""
    import shutil

    import numpy as np

    from latentcast.codec.format.container import write_latents

    src, rec = store_with_movie
    store = Store(shutil.copytree(src.root, tmp_path_factory.mktemp("heavy") / "s"))
    latents = np.random.default_rng(0).uniform(size=(rec.frames, 1 << 16)).astype(np.float32)
    write_latents(latents, (rec.width, rec.height), rec.fps, store.movie_path(rec.id), 8, 3, rec.decoder_sha256)
    return store, rec


@pytest.mark.parametrize("stall_s", [0.0, 1.0])
def test_a_client_that_stops_reading_gives_its_worker_and_slot_back(heavy_store, stall_s):
    store, rec = heavy_store
    with run_server(store, ServerOptions(limits=Limits(stall_s=stall_s, max_streams_per_client=1))) as srv:
        # Without BDP probing the client's window stays at HTTP/2's 64 kB, as a slow link's would.
        channel = grpc.insecure_channel(srv.address, options=[("grpc.http2.bdp_probe", 0)])
        call = pb_grpc.LatentcastStub(channel).StreamLatents(pb.StreamLatentsRequest(movie=rec.id))
        next(call)  # admitted; then never read again
        deadline = time.monotonic() + 6
        while srv.servicer.active_streams and time.monotonic() < deadline:
            time.sleep(0.1)
        if stall_s:
            assert srv.servicer.active_streams == 0  # cancelled within its stall time, slot released
            with grpc.insecure_channel(srv.address) as ch:  # the same client is admitted again
                assert next(pb_grpc.LatentcastStub(ch).StreamLatents(pb.StreamLatentsRequest(movie=rec.id)))
        else:  # without the watch the stream sits in its send for good: what the watch is for
            assert srv.servicer.active_streams == 1
        call.cancel()
        channel.close()

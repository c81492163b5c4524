"""Past a limit the answer is RESOURCE_EXHAUSTED at once, and other clients are not slowed."""

import time

import grpc
import pytest

from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.service import Limits


def _open_stream(stub, token):
    # paced by the server, so the stream stays open while the test runs
    call = stub.StreamLatents(pb.StreamLatentsRequest(movie="Long"), metadata=(("authorization", f"Bearer {token}"),),
                              timeout=30)
    next(call)
    return call


def test_stream_limits_per_client_and_in_total(long_store):
    store, _, _ = long_store
    limits = Limits(max_streams=3, max_streams_per_client=2, max_lead_s=0.01)
    with run_server(store, ServerOptions(tokens=["a", "b", "c"], limits=limits)) as srv:
        stub = pb_grpc.LatentcastStub(grpc.insecure_channel(srv.address))
        held = [_open_stream(stub, "a"), _open_stream(stub, "a")]
        t = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            _open_stream(stub, "a")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "per client" in err.value.details()
        assert time.monotonic() - t < 2  # refused at once, not queued
        held.append(_open_stream(stub, "b"))  # another client is still served
        with pytest.raises(grpc.RpcError) as err:
            _open_stream(stub, "c")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 3" in err.value.details()
        # catalog calls still answer while the streams are held
        assert stub.GetMovie(pb.GetMovieRequest(movie="Long"), metadata=(("authorization", "Bearer c"),),
                             timeout=5).frames == 96
        for call in held:
            call.cancel()
        deadline = time.monotonic() + 10
        while srv.servicer.active_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.servicer.active_streams == 0
        held = [_open_stream(stub, "a"), _open_stream(stub, "a")]  # the slots came back
        for call in held:
            call.cancel()


def test_stream_past_its_time_limit_is_cut_with_deadline_exceeded(store_with_movie):
    store, _ = store_with_movie
    limits = Limits(max_lead_s=0.01, max_stream_seconds=0.3)
    with run_server(store, ServerOptions(limits=limits)) as srv:
        stub = pb_grpc.LatentcastStub(grpc.insecure_channel(srv.address))
        with pytest.raises(grpc.RpcError) as err:
            list(stub.StreamLatents(pb.StreamLatentsRequest(movie="Shapes"), timeout=30))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

"""Prometheus metrics and the access log, over both transports: what they count must be what was sent."""

import http.client
import json
import logging
import time

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from latentcast.client.player import play
from latentcast.client.session import ServerError, Session
from latentcast.commands import serve
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc
from latentcast.server.app import ServerOptions, run_server, start_server

TOKEN = "metrics-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def _samples(text: bytes) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} from the exposition text."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_both_transports_sent(store_with_movie, tmp_path):
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        port = srv.http.port
        with Session(srv.address, token=TOKEN, cache_dir=tmp_path / "c") as s:
            play(s, rec.id, str(tmp_path / "o.y4m"), progress=False)
        with grpc.insecure_channel(srv.address) as ch:
            stub = pb_grpc.LatentcastStub(ch)
            chunks = list(stub.StreamLatents(pb.StreamLatentsRequest(movie=rec.id), metadata=AUTH))
            with pytest.raises(grpc.RpcError):
                stub.GetMovie(pb.GetMovieRequest(movie="no-such-movie"), metadata=AUTH)
        status, chunk0 = _get(port, f"/v1/movies/{rec.id}/chunks/0", token=None)  # public
        assert status == 200
        status, missing = _get(port, f"/v1/movies/{rec.id}/chunks/999")
        assert status == 404
        assert _get(port, f"/v1/decoders/{rec.decoder_sha256}")[0] == 200
        assert _get(port, "/metrics", token="wrong")[0] == 401  # the counts stay behind the token
        deadline = time.monotonic() + 5  # a stream is counted when gRPC closes it
        while True:
            status, text = _get(port, "/metrics")
            samples = _samples(text)
            if _value(samples, "latentcast_calls_total", transport="grpc", method="StreamLatents", status="OK") >= 1 \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert status == 200
    g = dict(transport="grpc")
    # The player's stream plus ours: each sent every frame once (the player's may end CANCELLED
    # once it has its last frame, after every chunk was handed over).
    assert _value(samples, "latentcast_frames_sent_total", **g) == 2 * rec.frames
    assert _value(samples, "latentcast_frames_sent_total", transport="http") == chunks[0].n_frames
    # bodies as sent, error bodies too
    assert _value(samples, "latentcast_bytes_sent_total", transport="http", method="chunk") == \
        len(chunk0) + len(missing)
    assert _value(samples, "latentcast_bytes_sent_total", method="StreamLatents", **g) == \
        pytest.approx(2 * sum(c.ByteSize() for c in chunks))
    assert _value(samples, "latentcast_decoder_downloads_total", **g) == 1
    assert _value(samples, "latentcast_decoder_downloads_total", transport="http") == 1
    # errors by code, on each side
    assert _value(samples, "latentcast_calls_total", method="GetMovie", status="NOT_FOUND", **g) == 1
    assert _value(samples, "latentcast_calls_total", transport="http", method="chunk", status="404") == 1
    assert _value(samples, "latentcast_calls_total", transport="http", method="metrics", status="401") == 1
    # latency: every stream observed once in the call histogram, and its first chunk in its own
    assert _value(samples, "latentcast_call_seconds_count", method="StreamLatents", **g) == 2
    assert _value(samples, "latentcast_first_chunk_seconds_count") == 2
    assert _value(samples, "latentcast_streams_active") == 0
    assert _value(samples, "latentcast_http_requests_active") == 1  # the scrape itself


def test_a_metrics_listener_of_its_own_and_its_rules(store_with_movie, tmp_path):
    store, rec = store_with_movie
    with run_server(store, ServerOptions(metrics_listen="127.0.0.1:0")) as srv:
        with Session(srv.address, cache_dir=tmp_path / "c") as s:
            s.get_movie(rec.id)
        status, text = _get(srv.metrics_http.port, "/metrics", token=None)  # no tokens: loopback, open
        assert status == 200
        assert _value(_samples(text), "latentcast_calls_total", transport="grpc", method="GetMovie", status="OK") == 1
        # only the scraper's routes: the store is not served here
        assert _get(srv.metrics_http.port, f"/v1/movies/{rec.id}/chunks/0", token=None)[0] == 404
    with pytest.raises(ValueError, match="metrics on 0.0.0.0:0 without a token"):
        start_server(store, ServerOptions(metrics_listen="0.0.0.0:0"))
    with pytest.raises(ValueError, match="without TLS"):
        start_server(store, ServerOptions(tokens=[TOKEN], metrics_listen="0.0.0.0:0"))
    assert "--metrics" in serve.build_parser().format_help()


def test_the_access_log_has_a_line_per_http_request_and_never_the_token(store_with_movie, caplog):
    store, rec = store_with_movie
    opts = ServerOptions(tokens=[TOKEN], access_log=True, http_listen="127.0.0.1:0")
    with caplog.at_level(logging.INFO, logger="latentcast.access"), run_server(store, opts) as srv:
        _get(srv.http.port, f"/v1/movies/{rec.id}")
        _get(srv.http.port, f"/v1/movies/{rec.id}", token="not-the-token")
        _get(srv.http.port, f"/v1/movies/{rec.id}/chunks/1", token=None)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "latentcast.access"]
    http_lines = [x for x in lines if x["transport"] == "http"]
    assert [(x["method"], x["status"]) for x in http_lines] == [("movie", "200"), ("movie", "401"), ("chunk", "200")]
    assert all(x["target"] == rec.id and x["peer"].startswith("127.0.0.1:") and x["ms"] >= 0 for x in http_lines)
    assert http_lines[2]["bytes"] > 0
    assert not any(TOKEN in r.getMessage() or "not-the-token" in r.getMessage() for r in caplog.records)


def test_a_refused_token_is_counted_as_unauthenticated(store_with_movie, tmp_path):
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        with Session(srv.address, token="wrong", cache_dir=tmp_path / "c", retry_s=0) as s, \
                pytest.raises(ServerError):
            s.get_movie(rec.id)
        samples = _samples(_get(srv.http.port, "/metrics")[1])
    assert _value(samples, "latentcast_calls_total", transport="grpc", method="GetMovie",
                  status="UNAUTHENTICATED") == 1

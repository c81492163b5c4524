"""The HTTP side of `serve`: routes, tokens, cache headers, ranges, status codes, and playback over it."""

import http.client
import json
from urllib.parse import urlsplit

import numpy as np
import pytest

import latentcast
from latentcast.client.session import ServerError
from latentcast.codec import video
from latentcast.codec.format.container import Container
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.store import Store
from synthetic import damage_chunk

TOKEN = "http-token"


@pytest.fixture(scope="module")
def served(store_with_movie):
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        yield srv, store, rec


def _get(srv, path, method="GET", **headers):
    url = urlsplit(srv.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request(method, path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r, body


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_catalog_and_description_need_the_token_and_stay_private(served):
    srv, _store, rec = served
    r, body = _get(srv, "/v1/movies")
    assert r.status == 401 and r.getheader("WWW-Authenticate").startswith("Bearer")
    assert json.loads(body)["status"] == 401
    r, body = _get(srv, "/v1/movies", **AUTH)
    assert r.status == 200 and r.getheader("Cache-Control").startswith("private")
    listed = json.loads(body)["movies"]
    assert [m["id"] for m in listed] == [rec.id]
    r, body = _get(srv, f"/v1/movies/{rec.id}", **AUTH)
    assert r.status == 200 and r.getheader("Cache-Control").startswith("private")
    described = json.loads(body)
    assert described["header"] and int(described["frames"]) == 24 and int(described["chunk_frames"]) == 3
    r, body = _get(srv, f"/v1/decoders/{rec.decoder_sha256}", **{"Authorization": "Bearer wrong"})
    assert r.status == 401 and b"invalid bearer token" in body


def test_a_chunk_is_public_immutable_and_the_bytes_grpc_carries(served):
    srv, store, rec = served
    with Container(store.movie_path(rec.id)) as c:
        entry, payload = c.chunks[2], c.read_payload(2)
    r, body = _get(srv, f"/v1/movies/{rec.id}/chunks/2")  # no token: chunks are public
    assert r.status == 200 and body == payload
    assert r.getheader("Cache-Control") == "public, max-age=31536000, immutable"
    assert int(r.getheader("X-Latentcast-Start-Frame")) == entry.start
    assert int(r.getheader("X-Latentcast-Checksum")) == entry.checksum
    etag = r.getheader("ETag")
    r, body = _get(srv, f"/v1/movies/{rec.id}/chunks/2", **{"If-None-Match": etag})
    assert r.status == 304 and body == b""
    r, body = _get(srv, f"/v1/movies/{rec.id}/chunks/2", Range="bytes=2-5")
    assert r.status == 206 and body == payload[2:6]
    assert r.getheader("Content-Range") == f"bytes 2-5/{len(payload)}"
    r, body = _get(srv, f"/v1/movies/{rec.id}/chunks/2", Range="bytes=-3")
    assert r.status == 206 and body == payload[-3:]
    r, _ = _get(srv, f"/v1/movies/{rec.id}/chunks/2", Range=f"bytes={len(payload)}-")
    assert r.status == 416 and r.getheader("Content-Range") == f"bytes */{len(payload)}"


def test_the_decoder_is_sent_as_grpc_sends_it(served):
    srv, store, rec = served
    wire, config, decoded = store.decoder_bytes(rec.decoder_sha256)
    r, body = _get(srv, f"/v1/decoders/{rec.decoder_sha256}", **AUTH)
    assert r.status == 200 and body == wire and int(r.getheader("X-Latentcast-Decoded-Bytes")) == decoded
    r, body = _get(srv, f"/v1/decoders/{rec.decoder_sha256}/config.json", **AUTH)
    assert r.status == 200 and body.decode() == config


@pytest.mark.parametrize("path,method,status", [
    ("/v1/movies/nope", "GET", 404),
    ("/v1/movies/{id}/chunks/8", "GET", 404),  # 24 frames in chunks of 3: 0..7
    ("/v1/movies/{id}/chunks/-1", "GET", 404),
    ("/v1/decoders/" + "0" * 64, "GET", 404),
    ("/v1/decoders/xyz", "GET", 404),
    ("/v1/movies?page_token=garbage", "GET", 400),
    ("/v1/movies?page_size=x", "GET", 400),
    ("/etc/passwd", "GET", 404),
    ("/v1/movies/" + "a" * 3000, "GET", 400),
    ("/v1/movies", "POST", 405),
    ("/v1/movies", "DELETE", 405),
])
def test_bad_requests_get_their_status(served, path, method, status):
    srv, _store, rec = served
    r, body = _get(srv, path.replace("{id}", rec.id), method=method, **AUTH)
    assert r.status == status
    assert json.loads(body)["status"] == status


def test_a_damaged_chunk_is_a_500_and_the_rest_still_serve(trained_model, clip, tmp_path):
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(clip), trained_model, title="bad", chunk_seconds=0.25, progress=False)
    damage_chunk(store, rec.id, 4)
    with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
        r, body = _get(srv, f"/v1/movies/{rec.id}/chunks/4")
        assert r.status == 500 and b"data loss" in body
        assert _get(srv, f"/v1/movies/{rec.id}/chunks/5")[0].status == 200
        with latentcast.Client(srv.http_url, cache_dir=tmp_path / "c") as client, \
                pytest.raises(ServerError, match="data loss"):
            client.play(rec.id, tmp_path / "bad.mkv")
    assert not (tmp_path / "bad.mkv").exists()


def test_playback_over_http_matches_the_offline_decode(served, offline_frames, tmp_path):
    srv, _store, rec = served
    with latentcast.Client(srv.http_url, token=TOKEN, cache_dir=tmp_path / "c") as client:
        assert [m.title for m in client.list()] == ["Shapes"]
        summary = client.play("Shapes", tmp_path / "all.mkv")
        seek = client.play(rec.id, tmp_path / "seek.mkv", start=7, count=9)
    assert np.array_equal(np.stack(list(video.read_frames(tmp_path / "all.mkv"))), offline_frames)
    assert np.array_equal(np.stack(list(video.read_frames(tmp_path / "seek.mkv"))), offline_frames[7:16])
    assert summary.decoder_downloaded and not seek.decoder_downloaded and summary.latent_bytes > 0
    with latentcast.Client(srv.http_url, token="wrong", cache_dir=tmp_path / "d") as client, \
            pytest.raises(ServerError, match="invalid bearer token"):
        client.list()


def test_the_http_side_refuses_to_listen_off_loopback_in_the_clear(store_with_movie):
    store, _ = store_with_movie
    with pytest.raises(ValueError, match="without TLS"):
        with run_server(store, ServerOptions(tokens=[TOKEN], listen="127.0.0.1:0", http_listen="0.0.0.0:0")):
            pass


def test_the_browser_graph_holds_no_weight_and_decodes_the_download_as_the_player_does(parted_model,
                                                                                     two_scene_clip, tmp_path):
    import onnxruntime as ort

    from latentcast.codec.format.compress import decompress_exact
    from latentcast.codec.format.decoder_file import decompress_decoder
    from latentcast.codec.format.decoder_state import load_state_verified
    from latentcast.codec.nn.config import DECODER, load_config
    from latentcast.codec.runtime.backends import build_decoder
    from latentcast.codec.runtime.onnx_graph import EXTERNAL_FILE

    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(two_scene_clip), parted_model, title="two", progress=False)
    cfg = load_config(parted_model)
    with Container(store.movie_path(rec.id)) as c:
        parts = c.header.parts
    base = cfg.decoder_sha256
    z = np.random.default_rng(0).normal(size=(2, cfg.latent_dim)).astype(np.float32)
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        assert _get(srv, f"/v1/decoders/{base}/graph.onnx")[0].status == 401
        r, coded = _get(srv, f"/v1/decoders/{base}/graph.onnx", **AUTH)
        assert r.status == 200 and r.getheader("Cache-Control").startswith("private"), coded[:300]
        graph = decompress_exact(coded, int(r.getheader("X-Latentcast-Decoded-Bytes")))
        assert len(coded) < len(graph) / 2  # zstd-coded: what `total` counts of it
        assert rec.decoder_bytes == len(store.decoder_bytes(base)[0]) + len(coded)  # it outweighs the config
        r, wire = _get(srv, f"/v1/decoders/{base}", **AUTH)  # what every viewer downloads, and `total` counts
        data = decompress_decoder(wire, int(r.getheader("X-Latentcast-Decoded-Bytes")))
        assert len(graph) < 0.1 * len(wire)  # the weights travel once, in the download, not in the graph
        r, body = _get(srv, f"/v1/decoders/{parts[1][1]}/graph.onnx", **AUTH)
        assert r.status == 404 and b"its base's graph" in body  # a scene reads its weights through the base's
    opts = ort.SessionOptions()
    opts.add_external_initializers_from_files_in_memory([EXTERNAL_FILE], [data], [len(data)])
    session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    want = build_decoder(load_state_verified((parted_model / DECODER).read_bytes(), base, "base"), cfg, "onnx")(z)
    got = np.concatenate([session.run(None, {"latents": z[i : i + 1]})[0] for i in range(len(z))])
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_cors_is_off_unless_an_origin_is_named(store_with_movie):
    store, rec = store_with_movie
    path = f"/v1/movies/{rec.id}/chunks/0"
    with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
        r, _ = _get(srv, path, Origin="https://elsewhere.example")
        assert r.status == 200 and r.getheader("Access-Control-Allow-Origin") is None
    with run_server(store, ServerOptions(http_listen="127.0.0.1:0", cors_origin="https://player.example")) as srv:
        r, _ = _get(srv, path)
        assert r.getheader("Access-Control-Allow-Origin") == "https://player.example"
        r, _ = _get(srv, f"/v1/movies/{rec.id}")  # what stays behind the token never gets CORS
        assert r.getheader("Access-Control-Allow-Origin") is None


def test_the_http_side_serves_tls_with_the_grpc_certificate(store_with_movie, offline_frames, tmp_path):
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    cert = (tmp_path / "cert.pem").read_bytes()
    store, rec = store_with_movie
    opts = ServerOptions(tokens=[TOKEN], tls_cert=cert, tls_key=(tmp_path / "key.pem").read_bytes(),
                         http_listen="127.0.0.1:0")
    with run_server(store, opts) as srv:
        assert srv.http_url.startswith("https://")
        with latentcast.Client(srv.http_url, token=TOKEN, tls_ca=cert, cache_dir=tmp_path / "c") as client:
            client.play(rec.id, tmp_path / "tls.mkv")
        with pytest.raises((http.client.HTTPException, ConnectionError)):  # plaintext to TLS: no HTTP answer
            _get(srv, "/healthz")
    assert np.array_equal(np.stack(list(video.read_frames(tmp_path / "tls.mkv"))), offline_frames)


def test_a_slow_client_times_out_and_holds_up_no_one(store_with_movie):
    import socket
    import time

    from latentcast.server.service import Limits

    store, _rec = store_with_movie
    with run_server(store, ServerOptions(http_listen="127.0.0.1:0", limits=Limits(stall_s=1.0))) as srv:
        slow = socket.create_connection(("127.0.0.1", srv.http.port), timeout=10)
        slow.sendall(b"GET /v1/mov")  # and never the rest (slowloris)
        t0 = time.monotonic()
        assert _get(srv, "/healthz")[0].status == 200  # others are served meanwhile
        assert slow.recv(100) == b""  # the server closed it
        assert time.monotonic() - t0 < 5
        slow.close()

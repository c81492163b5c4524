"""Serving details: TLS, SIGTERM draining, and movies ingested while the server runs."""

import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from latentcast.client.player import play
from latentcast.client.session import ServerError, Session
from latentcast.codec import video
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc
from latentcast.server.app import ServerOptions, run_server, start_server
from latentcast.server.service import Limits
from latentcast.server.store import Store


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return (d / "cert.pem").read_bytes(), (d / "key.pem").read_bytes()


def test_tls(store_with_movie, cert, tmp_path):
    store, _ = store_with_movie
    cert_pem, key_pem = cert
    with run_server(store, ServerOptions(tls_cert=cert_pem, tls_key=key_pem, tokens=["t"])) as srv:
        with Session(f"localhost:{srv.port}", token="t", root_certificates=cert_pem, cache_dir=tmp_path / "c") as s:
            assert play(s, "Shapes", str(tmp_path / "o.mkv"), progress=False).frames == 24
        # a plaintext client cannot talk to it
        with Session(f"localhost:{srv.port}", token="t", retry_s=0.5, timeout_s=2) as s, \
                pytest.raises(ServerError) as err:
            s.list_movies()
        assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_refuses_public_address_without_token(store_with_movie):
    store, _ = store_with_movie
    with pytest.raises(ValueError, match="without a token"):
        start_server(store, ServerOptions(listen="0.0.0.0:0"))


def test_refuses_a_public_address_without_tls_unless_told_the_network_is_trusted(store_with_movie, capsys):
    from latentcast.commands import serve

    store, _ = store_with_movie
    with pytest.raises(ValueError, match="without TLS"):
        start_server(store, ServerOptions(listen="0.0.0.0:0", tokens=["t"]))
    srv = start_server(store, ServerOptions(listen="0.0.0.0:0", tokens=["t"], insecure=True))
    srv.stop(0)
    assert serve.main(["--store", str(store.root), "--listen", "0.0.0.0:0", "--token", "t"]) == 1
    err = capsys.readouterr().err
    assert "without TLS" in err and "--insecure" in err and len(err.strip().splitlines()) == 1


def test_movies_ingested_while_serving_are_served(trained_model, clip, tmp_path):
    store = Store(tmp_path / "s", create=True)
    with run_server(store) as srv, Session(srv.address, cache_dir=tmp_path / "c") as s:
        assert s.list_movies() == []
        rec = Store(tmp_path / "s").ingest(str(clip), trained_model, title="new", progress=False)
        assert [m.id for m in s.list_movies()] == [rec.id]
        assert play(s, "new", str(tmp_path / "o.mkv"), progress=False).frames == 24


def test_sigterm_drains_in_flight_streams(store_with_movie, offline_frames, tmp_path):
    store, rec = store_with_movie
    proc = subprocess.Popen([sys.executable, "-m", "latentcast", "serve", "--store", str(store.root), "--listen",
                             "127.0.0.1:0", "--max-lead", "0.2", "--grace", "20"], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    port = int(line.split("127.0.0.1:")[1].split()[0])
    result = {}

    def viewer():
        with Session(f"127.0.0.1:{port}", cache_dir=tmp_path / "c", retry_s=1) as s:
            result["summary"] = play(s, rec.id, str(tmp_path / "o.mkv"), progress=False, buffer_s=0)

    t = threading.Thread(target=viewer)
    t.start()
    time.sleep(0.8)  # the paced stream is about a third through its 2 s
    proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert proc.wait(30) == 0
    assert "draining" in proc.stderr.read()
    assert result["summary"].reconnects == 0  # finished on the old connection, within the grace period
    assert np.array_equal(np.stack(list(video.read_frames(tmp_path / "o.mkv"))), offline_frames)


def test_sighup_rotates_the_tokens_without_a_restart(store_with_movie, tmp_path):
    import os
    import re

    store, _ = store_with_movie
    tokens = tmp_path / "tokens"
    tokens.write_text("old-token\n")
    proc = subprocess.Popen([sys.executable, "-m", "latentcast", "serve", "--store", str(store.root), "--listen",
                             "127.0.0.1:0", "--tokens-file", str(tokens)], stderr=subprocess.PIPE, text=True)
    try:
        port = re.search(r"127\.0\.0\.1:(\d+)", proc.stderr.readline()).group(1)

        def lists(token):
            with Session(f"127.0.0.1:{port}", token=token, retry_s=0, cache_dir=tmp_path / "c") as s:
                try:
                    return len(s.list_movies()) >= 1
                except ServerError as e:
                    assert e.code == grpc.StatusCode.UNAUTHENTICATED
                    return False

        assert lists("old-token") and not lists("new-token")
        tokens.write_text("# rotated\nnew-token\n")
        os.kill(proc.pid, signal.SIGHUP)
        assert "reloaded 1 tokens" in proc.stderr.readline()
        assert lists("new-token") and not lists("old-token")
        tokens.write_text("# nothing\n")  # an empty set would lock everyone out: refused
        os.kill(proc.pid, signal.SIGHUP)
        assert "not reloaded" in proc.stderr.readline()
        assert lists("new-token")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_mutual_tls_admits_only_clients_with_a_certificate_the_server_trusts(store_with_movie, cert, tmp_path,
                                                                             capsys):
    from latentcast.commands import list as list_cmd

    store, _ = store_with_movie
    cert_pem, key_pem = cert
    d = tmp_path / "client"
    d.mkdir()
    for name in ("good", "stranger"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        f"/CN={name}", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.pem")],
                       check=True, capture_output=True)
    (d / "server.pem").write_bytes(cert_pem)
    opts = ServerOptions(tls_cert=cert_pem, tls_key=key_pem, tls_client_ca=(d / "good.pem").read_bytes())
    with run_server(store, opts) as srv:
        base = ["--server", f"localhost:{srv.port}", "--tls-ca", str(d / "server.pem")]
        assert list_cmd.main(base + ["--tls-cert", str(d / "good.pem"), "--tls-key", str(d / "good.key")]) == 0
        assert "Shapes" in capsys.readouterr().out
        for who in (["--tls-cert", str(d / "stranger.pem"), "--tls-key", str(d / "stranger.key")], []):
            code = list_cmd.main(base + who)
            err = capsys.readouterr().err
            assert code == 1 and "UNAVAILABLE" in err and len(err.strip().splitlines()) == 1
        code = list_cmd.main(base + ["--tls-cert", str(d / "good.pem")])  # no key
        assert code == 1 and "go together" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs the server's own"):
        start_server(store, ServerOptions(tls_client_ca=cert_pem))


def test_the_access_log_has_a_json_line_per_call_and_never_the_token(store_with_movie, tmp_path, caplog):
    import json
    import logging

    store, rec = store_with_movie
    auth = (("authorization", "Bearer secret-token"),)
    # Paced to real time, a stream is still running when its client cancels it.
    opts = ServerOptions(tokens=["secret-token"], access_log=True, limits=Limits(max_lead_s=0.1))
    with caplog.at_level(logging.INFO, logger="latentcast.access"), run_server(store, opts) as srv:
        with Session(srv.address, token="secret-token", cache_dir=tmp_path / "c") as s:
            play(s, rec.id, str(tmp_path / "o.mkv"), progress=False)
        with Session(srv.address, token="wrong", cache_dir=tmp_path / "c", retry_s=0) as s, \
                pytest.raises(ServerError):
            s.get_movie(rec.id)
        with grpc.insecure_channel(srv.address) as ch:
            stub = pb_grpc.LatentcastStub(ch)
            # Read to its end, a stream closes with OK; cancelled after a chunk, with CANCELLED
            # (the player itself cancels once it has its last frame, so its own line may say either).
            whole = sum(c.ByteSize() for c in stub.StreamLatents(pb.StreamLatentsRequest(movie=rec.id), metadata=auth))
            cut = stub.StreamLatents(pb.StreamLatentsRequest(movie=rec.id), metadata=auth)
            next(cut)
            cut.cancel()
        deadline = time.monotonic() + 5  # a stream's line is written when gRPC closes it
        while sum('"StreamLatents"' in r.getMessage() for r in caplog.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "latentcast.access"]
    by_method = {}
    for line in lines:
        by_method.setdefault(line["method"], []).append(line)
    assert {"GetMovie", "GetDecoder", "StreamLatents"} <= set(by_method)
    streams = by_method["StreamLatents"]
    assert len(streams) == 3 and all(x["target"] == rec.id and "127.0.0.1" in x["peer"] for x in streams)
    assert any(x["status"] == "OK" and x["bytes"] == whole for x in streams)
    assert any(x["status"] == "CANCELLED" and 0 < x["bytes"] < whole for x in streams), (streams, whole)
    assert by_method["GetDecoder"][0]["target"] == rec.decoder_sha256
    assert any(x["status"] == "UNAUTHENTICATED" for x in by_method["GetMovie"])
    assert not any("secret-token" in r.getMessage() or "wrong" in r.getMessage() for r in caplog.records)

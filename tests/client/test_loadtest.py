import json
import os

import grpc
import pytest

from latentcast.client.checks import UntrustedMessage
from latentcast.client.loadtest import check_loopback, run_loadtest
from latentcast.client.session import ServerError, Session
from latentcast.codec.format.decoder_file import sha256_bytes
from latentcast.codec.format.errors import UsageError
from latentcast.commands import loadtest
from latentcast.server.app import ServerOptions, run_server


def test_loadtest_accounts_for_every_frame(store_with_movie, tmp_path):
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=["t"])) as srv:
        report = run_loadtest(srv.address, clients=4, seconds=1.5, token="t", decode=True, server_pid=os.getpid(),
                              cache_dir=tmp_path / "cache")
    d = report.as_dict()
    assert report.ok, d
    assert d["streams"] >= 4 and d["frames"] > 0 and d["decoded_frames"] == d["frames"]
    assert d["missing_frames"] == 0 and d["duplicated_frames"] == 0
    assert d["first_chunk_ms_p50"] is not None and d["health_ms_p99"] is not None
    assert d["server_peak_rss_mb"] > 0


def test_loadtest_fails_on_errors(store_with_movie, tmp_path, capsys):
    store, _ = store_with_movie
    with run_server(store, ServerOptions(tokens=["t"])) as srv:
        # a wrong token: every stream fails, and the command says so with exit 1
        code = loadtest.main(["--server", srv.address, "--token", "t", "--clients", "2", "--seconds", "0.5",
                              "--json"])
        assert code == 0
        assert json.loads(capsys.readouterr().out)["ok"] is True
        code = loadtest.main(["--server", srv.address, "--token", "bad", "--clients", "2", "--seconds", "0.5"])
    assert code == 1


@pytest.mark.parametrize("addr", ["10.0.0.1:50051", "example.com:443", "0.0.0.0:1"])
def test_only_loopback(addr):
    with pytest.raises(UsageError):
        check_loopback(addr)


def test_a_mix_of_viewers_seeks_cancels_reads_slowly_and_downloads(store_with_movie, tmp_path):
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=["t"])) as srv:
        report = run_loadtest(srv.address, clients=4, seconds=2.0, token="t", mix=True, seed=3,
                              server_pid=os.getpid(), cache_dir=tmp_path / "cache")
    d = report.as_dict()
    assert report.ok, d
    assert set(d["mix"]) == {"play", "seek", "cancel", "slow", "decoder"}, d["mix"]
    assert d["decoder_downloads"] == d["mix"]["decoder"]  # each whole and matching its sha256
    assert d["missing_frames"] == 0 and d["duplicated_frames"] == 0 and d["frames"] > 0
    assert d["server_rss_first_minute_mb"] > 0


def test_chaos_kills_the_server_and_every_frame_still_arrives_once(long_store, tmp_path, capsys):
    store, rec, _frames = long_store
    # Paced to real time, the 8-second movie's streams are running when each kill lands.
    code = loadtest.main(["--store", str(store.root), "--chaos-kill", "2", "--max-lead", "0.5", "--mix",
                          "--clients", "4", "--seconds", "7", "--json",
                          "--server-log", str(tmp_path / "server.log")])
    d = json.loads(capsys.readouterr().out)
    assert code == 0, d
    assert d["kills"] >= 2 and d["restarts"] == d["kills"], d
    assert d["reconnects"] > 0  # streams were cut by the kills, and resumed
    assert d["missing_frames"] == 0 and d["duplicated_frames"] == 0 and not d["errors"]
    assert d["frames"] >= rec.frames
    assert d["server_rss_first_minute_mb"] > 0 and d["server_rss_last_minute_mb"] > 0


def test_chaos_needs_a_store(tmp_path, capsys):
    assert loadtest.main(["--chaos-kill", "2", "--clients", "1", "--seconds", "1"]) == 1
    assert "--store" in capsys.readouterr().err
    assert loadtest.main(["--chaos-kill", "2", "--store", str(tmp_path), "--seconds", "1"]) == 1
    assert "not a latentcast store" in capsys.readouterr().err


def test_fetch_decoder_downloads_past_the_cache_and_checks_the_name(store_with_movie, tmp_path):
    store, rec = store_with_movie
    with run_server(store, ServerOptions()) as srv, Session(srv.address, cache_dir=tmp_path / "cache") as s:
        sha = s.get_movie(rec.id).decoder_sha256
        data = s.fetch_decoder(sha)
        assert sha256_bytes(data) == sha
        assert s.received.decoder_bytes > 0
        assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing cached
        with pytest.raises(UntrustedMessage):
            s.fetch_decoder("../../etc/passwd")
        with pytest.raises(ServerError) as err:
            s.fetch_decoder("0" * 64)
        assert err.value.code == grpc.StatusCode.NOT_FOUND

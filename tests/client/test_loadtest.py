import json
import os

import pytest

from latentcast.client.loadtest import check_loopback, run_loadtest
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

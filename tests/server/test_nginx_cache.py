"""Chunks through a real HTTP cache: Debian's nginx with a plain proxy_cache in front of the
origin, overriding none of its headers. A second viewer is served every chunk from nginx's
cache; the origin sees no chunk request. This is how the service scales past one origin."""

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

import latentcast
from latentcast.codec import video
from latentcast.server.app import ServerOptions, run_server

CONFIG = """
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_cache_path {dir}/cache keys_zone=chunks:1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{origin};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache chunks;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx_in_front(store_with_movie, tmp_path):
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if binary is None:
        pytest.fail("nginx is not installed: apt-get install nginx-light (the README's test command does)")
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=["t"], http_listen="127.0.0.1:0")) as origin:
        port = _free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(CONFIG.format(dir=tmp_path, port=port, origin=origin.http.port))
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"nginx did not start: {proc.stderr.read().decode()[-300:]}")
                    time.sleep(0.05)
            yield origin, f"http://127.0.0.1:{port}", rec
        finally:
            proc.terminate()
            proc.wait(10)


def test_a_second_viewer_is_served_from_the_cache(nginx_in_front, offline_frames, tmp_path):
    origin, cached_url, rec = nginx_in_front
    served = origin.http.gateway.served
    for viewer in ("first", "second"):
        with latentcast.Client(cached_url, token="t", cache_dir=tmp_path / viewer) as client:
            client.play(rec.id, tmp_path / f"{viewer}.mkv")
        assert np.array_equal(np.stack(list(video.read_frames(tmp_path / f"{viewer}.mkv"))), offline_frames)
        if viewer == "first":
            assert served["chunk"] == 8  # every chunk once, through nginx
    assert served["chunk"] == 8  # the second viewer's chunks all came from nginx's cache
    log = (tmp_path / "access.log").read_text()
    assert log.count("/chunks/") == 16

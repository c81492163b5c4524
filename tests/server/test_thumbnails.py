"""Seek thumbnails: chosen from the latents, stored with a checksum, served over gRPC and HTTP
behind the token, counted apart, and refused when damaged."""

import hashlib
import http.client
import io
import json
import sqlite3

import grpc
import numpy as np
import pytest
from PIL import Image

import latentcast
from latentcast.client.checks import UntrustedMessage, check_thumbnails
from latentcast.codec.explore.thumbnails import MAX_THUMBS, medoid, thumbnail_spans
from latentcast.codec.format.container import Container
from latentcast.codec.runtime.decode import decode_movie
from latentcast.codec.runtime.scene_decoders import model_decoders
from latentcast.commands import store as store_cmd
from latentcast.proto import latentcast_pb2 as pb
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.store import Store, check_store
from synthetic import flash_and_click, write_clip_with_sound

TOKEN = "thumbs-token"
FPS = 12


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory, trained_model):
    d = tmp_path_factory.mktemp("thumbs")
    frames, pcm = flash_and_click(48, FPS, 30)  # a cut at the flash
    src = write_clip_with_sound(d / "two.mkv", frames, FPS, pcm)
    store = Store(d / "s", create=True)
    rec = store.ingest(str(src), trained_model, title="two", progress=False)
    return store, rec, trained_model


def _cues(vtt: str) -> list[tuple[float, float, tuple[int, ...]]]:
    def secs(stamp):
        h, m, s = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    lines = vtt.splitlines()
    out = []
    for i, line in enumerate(lines):
        if "-->" in line:
            a, b = line.split(" --> ")
            out.append((secs(a), secs(b), tuple(map(int, lines[i + 1].split("#xywh=")[1].split(",")))))
    return out


def test_a_picture_per_scene_covering_the_movie_each_a_frame_of_its_scene(two_scenes):
    store, rec, model = two_scenes
    with Container(store.movie_path(rec.id)) as c:
        h = c.header
        frames = np.concatenate(list(decode_movie(c, model_decoders(model))))
    assert len(h.scenes) >= 2
    thumbs = store.thumbnails(rec.id)
    cues = _cues(thumbs.vtt)
    assert thumbs.vtt.startswith("WEBVTT") and len(cues) == len(h.scenes) == thumbs.tiles
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(48 / FPS)
    assert all(a[1] == b[0] for a, b in zip(cues, cues[1:]))  # contiguous: every moment has a picture
    ends = [start for start, _ in h.scenes[1:]] + [h.frames]
    sprite = np.asarray(Image.open(io.BytesIO(thumbs.sprite)).convert("RGB")).astype(float)
    for (start, _), end, (_a, _b, (x, y, w, ht)) in zip(h.scenes, ends, cues):
        tile = sprite[y : y + ht, x : x + w]
        # the tile is one of its own scene's frames (JPEG aside), nearer to it than to any other scene's
        errors = [((frames[f].astype(float) - tile) ** 2).mean() for f in range(h.frames)]
        assert start <= int(np.argmin(errors)) < end
    # the catalog keeps the scenes too, and counts the thumbnails' bytes apart
    assert [s[0] for s in json.loads(rec.scenes)] == [s for s, _ in h.scenes]
    assert rec.thumbnail_bytes == len(thumbs.sprite) + len(thumbs.vtt.encode())
    seconds = 48 / FPS  # ...and no rate counts them: a player without seek previews never fetches them
    assert rec.total_kbps == pytest.approx((rec.streaming_bytes + rec.decoder_bytes + rec.part_bytes) * 8 / 1000
                                           / seconds)


def test_medoid_and_spans():
    assert medoid(np.array([[0.0], [1.0], [2.0], [3.0], [10.0]]), np.ones(1)) == 2
    # one scene of 25 s at 10 fps: cut into spans of at most 10 s
    assert thumbnail_spans(((0, 1),), 250, 10) == [(0, 83), (83, 167), (167, 250)]
    # thousands of scenes: merged evenly to at most MAX_THUMBS pictures, still covering the movie
    many = tuple((i * 10, 1) for i in range(3000))
    spans = thumbnail_spans(many, 30000, 25)
    assert len(spans) <= MAX_THUMBS and spans[0][0] == 0 and spans[-1][1] == 30000
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def _http(port, path, token=TOKEN):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r, body


def test_served_over_grpc_and_http_behind_the_token(two_scenes, tmp_path):
    store, rec, _model = two_scenes
    stored = store.thumbnails(rec.id)
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        with latentcast.Client(srv.address, token=TOKEN, cache_dir=tmp_path / "c") as client:
            assert client.thumbnails(rec.id) == (stored.vtt, stored.sprite)
            assert client.movie(rec.id).thumbnail_bytes == rec.thumbnail_bytes
        with latentcast.Client(srv.http_url, token=TOKEN, cache_dir=tmp_path / "h") as client:
            assert client.thumbnails(rec.id) == (stored.vtt, stored.sprite)
        with latentcast.Client(srv.address, token="wrong", cache_dir=tmp_path / "c") as client, \
                pytest.raises(latentcast.client.session.ServerError, match="UNAUTHENTICATED"):
            client.session.retry_s = 0
            client.thumbnails(rec.id)
        port = srv.http.port
        r, body = _http(port, f"/v1/movies/{rec.id}/thumbnails.jpg")
        assert r.status == 200 and body == stored.sprite and r.getheader("Content-Type") == "image/jpeg"
        assert r.getheader("Cache-Control").startswith("private")  # pictures of the movie: no shared cache
        assert r.getheader("ETag") == f'"{stored.sprite_sha256}"'
        r, body = _http(port, f"/v1/movies/{rec.id}/thumbnails.vtt")
        assert r.status == 200 and body.decode() == stored.vtt and r.getheader("Content-Type").startswith("text/vtt")
        assert _http(port, f"/v1/movies/{rec.id}/thumbnails.vtt", token=None)[0].status == 401
        assert _http(port, "/v1/movies/nosuchmovie/thumbnails.jpg")[0].status == 404


def test_a_damaged_sprite_is_data_loss_and_store_check_says_so(trained_model, clip, tmp_path, capsys):
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(clip), trained_model, title="x", progress=False)
    old = store.ingest(str(clip), trained_model, title="old", progress=False)
    path = store.thumbnail_path(rec.id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with sqlite3.connect(store.root / "catalog.sqlite") as db:  # a movie from before thumbnails
        db.execute("DELETE FROM thumbnails WHERE movie_id = ?", (old.id,))
    store.thumbnail_path(old.id).unlink()
    with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
        with grpc.insecure_channel(srv.address) as ch:
            stub = latentcast.proto.latentcast_pb2_grpc.LatentcastStub(ch)
            with pytest.raises(grpc.RpcError) as e:
                stub.GetThumbnails(pb.GetThumbnailsRequest(movie=rec.id))
            assert e.value.code() == grpc.StatusCode.DATA_LOSS
            with pytest.raises(grpc.RpcError) as e:
                stub.GetThumbnails(pb.GetThumbnailsRequest(movie=old.id))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            stub.GetMovie(pb.GetMovieRequest(movie=rec.id))  # the movie itself serves on
        assert _http(srv.http.port, f"/v1/movies/{rec.id}/thumbnails.jpg", token=None)[0].status == 500
    report = check_store(store)
    assert any("thumbnail sprite fails its checksum" in d for d in report.damaged)
    assert store_cmd.main(["check", "--store", str(store.root)]) == 1
    assert "of seek thumbnails" in capsys.readouterr().out
    store.remove(rec.id)
    assert not path.exists()  # rm takes the sprite with the movie


def test_the_client_refuses_a_sprite_that_is_not_what_its_hash_says():
    sprite = b"\xff\xd8not really a jpeg"
    good = pb.Thumbnails(vtt="WEBVTT\n", sprite=sprite, sprite_sha256=hashlib.sha256(sprite).hexdigest())
    assert check_thumbnails(good) is good
    for lie in (pb.Thumbnails(vtt="WEBVTT\n", sprite=sprite + b"x", sprite_sha256=good.sprite_sha256),
                pb.Thumbnails(vtt="<script>", sprite=sprite, sprite_sha256=good.sprite_sha256),
                pb.Thumbnails(vtt="WEBVTT\n", sprite=sprite, sprite_sha256="../../etc/passwd")):
        with pytest.raises(UntrustedMessage):
            check_thumbnails(lie)


def test_a_catalog_from_before_the_scenes_column_gets_it_from_the_headers(two_scenes, tmp_path):
    import shutil

    store, rec, _model = two_scenes
    copy = tmp_path / "copy"
    shutil.copytree(store.root, copy)
    with sqlite3.connect(copy / "catalog.sqlite") as db:
        db.execute("ALTER TABLE movies DROP COLUMN scenes")
    assert Store(copy).get(rec.id).scenes == rec.scenes != "[]"

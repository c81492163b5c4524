"""A movie decoded as a base plus scene parts, served over gRPC: the viewer fetches each part
(by sha256, verified, cached) as playback reaches its scene, and every part's byte is counted."""

import numpy as np
import pytest

from latentcast.client.player import play
from latentcast.client.session import Session
from latentcast.codec import video
from latentcast.codec.format.decoder_file import compress_decoder, sha256_bytes
from latentcast.codec.format.errors import ModelError
from latentcast.codec.nn.config import load_config
from latentcast.codec.nn.part_index import load_part_index, part_config
from latentcast.server.app import run_server
from latentcast.server.store import Store, check_store


@pytest.fixture(scope="module")
def parted_store(tmp_path_factory, parted_model, two_scene_clip):
    store = Store(tmp_path_factory.mktemp("partstore") / "s", create=True)
    rec = store.ingest(str(two_scene_clip), parted_model, title="Two", chunk_seconds=1.5, progress=False)
    import latentcast

    frames = np.stack(list(latentcast.decode(store.movie_path(rec.id), parted_model)))
    return store, rec, frames


def _frames(path):
    return np.stack(list(video.read_frames(path)))


def test_play_fetches_each_part_and_counts_it(parted_store, parted_model, tmp_path):
    store, rec, offline = parted_store
    index = load_part_index(parted_model, load_config(parted_model).decoder_sha256)
    # Each part travels with the few bytes that name its base, and those count too.
    base = load_config(parted_model).decoder_sha256
    assert rec.part_bytes == sum(p.bytes_sent + len(part_config(base).encode()) for p in index.parts) > 0
    assert rec.total_kbps == pytest.approx(
        (rec.side_bytes + rec.chunk_bytes + rec.decoder_bytes + rec.part_bytes) * 8 / 4.0 / 1000)
    cache = tmp_path / "cache"
    with run_server(store) as srv:
        with Session(srv.address, cache_dir=cache, retry_s=2.0) as s:
            movie = s.get_movie("Two")
            assert movie.part_bytes == rec.part_bytes
            summary = play(s, "Two", str(tmp_path / "all.mkv"), progress=False)
        assert np.array_equal(_frames(tmp_path / "all.mkv"), offline)
        # A first view downloads the base and both parts, each with its config, and no more
        # than the movie's total counts (which counts the larger of a base's config and graph).
        sent = [store.decoder_bytes(sha) for sha in (base, *(p.sha256 for p in index.parts))]
        payload = sum(len(w) + len(c.encode()) for w, c, _ in sent)
        assert payload <= summary.decoder_bytes <= payload + 40 * len(sent)  # + each message's framing
        assert summary.decoder_bytes <= rec.decoder_bytes + rec.part_bytes
        for p in index.parts:
            assert sha256_bytes((cache / f"{p.sha256}.safetensors").read_bytes()) == p.sha256
        # A seek into the second scene, from nothing cached, fetches the base and that part alone.
        with Session(srv.address, cache_dir=tmp_path / "fresh", retry_s=2.0) as s:
            play(s, "Two", str(tmp_path / "tail.mkv"), start=30, count=12, progress=False)
        assert np.array_equal(_frames(tmp_path / "tail.mkv"), offline[30:42])
        assert not (tmp_path / "fresh" / f"{index.parts[0].sha256}.safetensors").exists()
        assert (tmp_path / "fresh" / f"{index.parts[1].sha256}.safetensors").exists()
        # A damaged cached part is fetched again, never loaded.
        damaged = cache / f"{index.parts[1].sha256}.safetensors"
        damaged.write_bytes(damaged.read_bytes()[:-2] + b"xx")
        with Session(srv.address, cache_dir=cache, retry_s=2.0) as s:
            play(s, "Two", str(tmp_path / "again.mkv"), start=24, count=6, progress=False)
        assert np.array_equal(_frames(tmp_path / "again.mkv"), offline[24:30])
        assert sha256_bytes(damaged.read_bytes()) == index.parts[1].sha256


def test_a_part_tampered_with_on_the_server_is_refused(tmp_path, parted_model, two_scene_clip):
    store = Store(tmp_path / "s", create=True)
    store.ingest(str(two_scene_clip), parted_model, title="Two", progress=False)
    index = load_part_index(parted_model, load_config(parted_model).decoder_sha256)
    sha = index.parts[1].sha256
    raw = bytearray(store.decoder_path(sha).read_bytes())
    raw[-3] ^= 1
    store.decoder_wire_path(sha).write_bytes(compress_decoder(bytes(raw)))  # still decompresses
    with run_server(store) as srv, Session(srv.address, cache_dir=tmp_path / "c", retry_s=2.0) as s:
        play(s, "Two", str(tmp_path / "first.mkv"), count=12, progress=False)  # the first scene plays
        with pytest.raises(ModelError, match="sha256 mismatch"):
            play(s, "Two", str(tmp_path / "second.mkv"), start=24, progress=False)
    assert not (tmp_path / "c" / f"{sha}.safetensors").exists()  # nothing unverified is cached


def test_removing_the_movie_removes_its_parts(tmp_path, parted_model, two_scene_clip):
    store = Store(tmp_path / "s", create=True)
    a = store.ingest(str(two_scene_clip), parted_model, title="A", progress=False)
    b = store.ingest(str(two_scene_clip), parted_model, title="B", progress=False)
    index = load_part_index(parted_model, load_config(parted_model).decoder_sha256)
    assert check_store(store).clean
    store.remove(a.id)  # B still uses the base and the parts: they stay
    assert all(store.decoder_path(p.sha256).exists() for p in index.parts)
    assert check_store(store).clean
    _, dropped = store.remove(b.id)
    assert dropped and not any(store.decoder_path(p.sha256).exists() for p in index.parts)
    report = check_store(store)
    assert report.clean and not report.orphans


def test_the_load_test_decodes_every_scene_with_its_part(parted_store, tmp_path):
    from latentcast.client.loadtest import run_loadtest

    store, _rec, _ = parted_store
    with run_server(store) as srv:
        report = run_loadtest(srv.address, clients=2, seconds=1.5, decode=True, cache_dir=tmp_path / "cache")
    d = report.as_dict()
    assert report.ok and d["decoded_frames"] == d["frames"] > 0 and d["missing_frames"] == 0, d
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3  # the base and both parts


def test_a_catalog_from_before_configs_were_counted_is_migrated(parted_store, tmp_path):
    import shutil
    import sqlite3

    store, rec, _ = parted_store
    old = tmp_path / "old"
    shutil.copytree(store.root, old)
    named = len(part_config(rec.decoder_sha256).encode())
    db = sqlite3.connect(old / "catalog.sqlite")
    # As such a catalog was: no config_bytes, and each movie's part_bytes the parts' files alone.
    db.execute("UPDATE movies SET part_bytes = part_bytes - ?", (2 * named,))
    db.execute("ALTER TABLE decoders DROP COLUMN config_bytes")
    db.commit()
    db.close()
    assert Store(old).get(rec.id) == rec  # base and parts counted with what describes each
    assert Store(old).get(rec.id) == rec  # and only once, however often the store is opened

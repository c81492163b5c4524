import sqlite3

import pytest

from latentcast.codec.format.errors import LatentcastError
from latentcast.commands import ingest, rm
from latentcast.server.store import NotFound, Store, StoreError


def test_ingest_prints_id_last_and_registers(trained_model, clip, tmp_path, capsys):
    store_dir = tmp_path / "store"
    assert ingest.main([str(clip), "--model", str(trained_model), "--store", str(store_dir), "--title", "A", "-q"]) == 0
    movie_id = capsys.readouterr().out.strip().splitlines()[-1]
    store = Store(store_dir)
    rec = store.get(movie_id)
    assert rec.title == "A" and rec.frames == 24 and store.get("A").id == movie_id
    assert store.movie_path(movie_id).stat().st_size == rec.stored_bytes
    mode = sqlite3.connect(store_dir / "catalog.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_decoders_are_shared_and_removed_with_last_movie(trained_model, clip, tmp_path, capsys):
    store = Store(tmp_path / "s", create=True)
    a = store.ingest(str(clip), trained_model, title="a", progress=False)
    b = store.ingest(str(clip), trained_model, title="b", progress=False)
    assert a.decoder_sha256 == b.decoder_sha256
    assert len(list((tmp_path / "s" / "decoders").glob("*.safetensors"))) == 1
    assert rm.main([a.id, "--store", str(tmp_path / "s")]) == 0
    assert store.decoder_path(b.decoder_sha256).exists()
    assert rm.main([b.id, "--store", str(tmp_path / "s")]) == 0
    assert not store.decoder_path(b.decoder_sha256).exists()
    assert store.list() == []
    assert rm.main([b.id, "--store", str(tmp_path / "s")]) == 1
    assert "no movie" in capsys.readouterr().err


def test_failed_ingest_leaves_no_half_movie_and_rerun_succeeds(trained_model, clip, tmp_path, monkeypatch):
    store = Store(tmp_path / "s", create=True)
    import latentcast.codec.nn.encode as encode_mod

    real = encode_mod.encode_video

    def dies_midway(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # interrupted after the container is written, before the catalog row

    monkeypatch.setattr(encode_mod, "encode_video", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        store.ingest(str(clip), trained_model, title="x", progress=False)
    assert store.list() == []
    assert list((tmp_path / "s" / "movies").iterdir()) == []
    monkeypatch.setattr(encode_mod, "encode_video", real)
    rec = store.ingest(str(clip), trained_model, title="x", progress=False)
    assert store.list() == [rec]


def test_paths_never_come_from_user_text(tmp_path):
    store = Store(tmp_path / "s", create=True)
    for bad in ("../../etc/passwd", "..", "a/b", "0" * 11, "g" * 12):
        with pytest.raises(NotFound):
            store.movie_path(bad)
        with pytest.raises(NotFound):
            store.get(bad)


def test_missing_store_is_an_error(tmp_path):
    with pytest.raises(StoreError):
        Store(tmp_path / "nope")
    assert issubclass(StoreError, LatentcastError)


def test_a_catalog_from_before_side_bytes_is_migrated_from_its_containers(trained_model, clip, tmp_path):
    import sqlite3

    from latentcast.codec.format.container import Container

    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(clip), trained_model, title="x", progress=False)
    db = sqlite3.connect(tmp_path / "s" / "catalog.sqlite")
    db.execute("ALTER TABLE movies DROP COLUMN side_bytes")  # as catalogs were before the column
    db.commit()
    db.close()
    migrated = Store(tmp_path / "s").get(rec.id)
    with Container(store.movie_path(rec.id)) as c:
        assert migrated.side_bytes == c.header_bytes > 0
        assert migrated.streaming_bytes == c.streaming_bytes
    assert migrated == rec

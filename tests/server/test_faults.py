"""A full disk during ingest, and a catalog held locked while streams run."""

import contextlib
import errno
import sqlite3
import threading

import pytest

import latentcast.codec.format.container as container_mod
from latentcast.client.player import play
from latentcast.client.session import Session
from latentcast.commands import ingest
from latentcast.server.app import run_server
from latentcast.server.store import Store, StoreError, check_store


class _FullDisk:
    """A file that accepts ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_disk_full_during_ingest_is_one_clean_error(trained_model, clip, tmp_path, monkeypatch, capsys):
    root = tmp_path / "s"
    store = Store(root, create=True)
    first = store.ingest(str(clip), trained_model, title="first", progress=False)
    before = store.movie_path(first.id).read_bytes()
    real = container_mod.atomic_write

    @contextlib.contextmanager
    def tiny_disk(path, mode="wb"):
        with real(path, mode) as f:
            yield _FullDisk(f, room=600)

    monkeypatch.setattr(container_mod, "atomic_write", tiny_disk)
    code = ingest.main([str(clip), "--model", str(trained_model), "--store", str(root), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    store = Store(root)
    assert [m.id for m in store.list()] == [first.id]
    assert store.movie_path(first.id).read_bytes() == before
    report = check_store(store)
    assert report.clean, report  # no temp file left behind either


def test_locked_catalog_streams_go_on_and_ingest_fails_cleanly(store_with_movie, trained_model, clip, tmp_path):
    import shutil

    src, _ = store_with_movie
    shutil.copytree(src.root, tmp_path / "s")
    store = Store(tmp_path / "s", busy_timeout_s=0.5)
    rec = store.list()[0]
    lock = sqlite3.connect(tmp_path / "s" / "catalog.sqlite", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # a writer holds the catalog
    try:
        with run_server(store) as srv:
            results = []

            def viewer(i):
                with Session(srv.address, cache_dir=tmp_path / f"c{i}") as s:
                    results.append(play(s, rec.id, str(tmp_path / f"v{i}.mkv"), progress=False).frames)

            threads = [threading.Thread(target=viewer, args=(i,)) for i in range(3)]
            [t.start() for t in threads]
            with pytest.raises(StoreError, match="busy"):
                store.ingest(str(clip), trained_model, title="late", progress=False)
            [t.join(60) for t in threads]
            assert results == [24, 24, 24]
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert [m.id for m in store.list()] == [rec.id]
    assert check_store(store).clean  # the failed ingest took its file with it
    assert store.ingest(str(clip), trained_model, title="late", progress=False).title == "late"

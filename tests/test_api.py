"""The Python API as the README shows it: train, encode, decode and a Client, each call."""

import numpy as np
import pytest

import latentcast
from latentcast.codec.format.container import Container
from latentcast.codec.format.errors import UsageError
from latentcast.server.app import run_server


def test_train_encode_decode_play_through_the_api(clip, clip_frames, tmp_path, store_with_movie, offline_frames):
    summary = latentcast.train(clip, tmp_path / "m", epochs=3, batch_size=4, latent_dim=32, size=(64, 48))
    assert summary["steps"] == 18 and (tmp_path / "m" / "config.json").exists()
    assert (tmp_path / "m" / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    res = latentcast.encode(clip, tmp_path / "m", tmp_path / "a.lcv", bits=4)
    assert res.frames == 24 and res.bits == 4
    with Container(tmp_path / "a.lcv") as c:
        assert c.header.latent_dim == 32

    frames = list(latentcast.decode(tmp_path / "a.lcv", tmp_path / "m"))
    assert len(frames) == 24 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    tail = list(latentcast.decode(tmp_path / "a.lcv", tmp_path / "m", start=20, count=10))
    assert len(tail) == 4 and all(np.array_equal(a, b) for a, b in zip(tail, frames[20:]))

    store, rec = store_with_movie
    with run_server(store) as srv, latentcast.Client(srv.address, cache_dir=tmp_path / "cache") as client:
        assert [m.id for m in client.list()] == [rec.id]
        assert client.movie("Shapes").id == rec.id
        seen = []
        played = client.play(rec.id, tmp_path / "out.mkv", on_frames=seen.append)
    assert played.frames == rec.frames
    assert np.array_equal(np.concatenate(seen), offline_frames)


def test_unknown_training_options_are_named(clip, tmp_path):
    with pytest.raises(UsageError, match="unknown training option 'minuets'"):
        latentcast.train(clip, tmp_path / "m", minuets=3)


def test_the_package_names_load_only_when_used():
    assert set(latentcast.__all__) <= set(dir(latentcast))
    with pytest.raises(AttributeError):
        latentcast.nothing_by_this_name

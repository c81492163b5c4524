from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from latentcast.codec.format.container import Container
from latentcast.codec.runtime.decode import decode_movie
from latentcast.codec.runtime.scene_decoders import model_decoders
from latentcast.server.store import Store  # noqa: E402
from synthetic import make_frames, write_clip  # noqa: E402

# Two cores on CI: keep torch from oversubscribing them when pytest runs tests in one process.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def clip_frames():
    return make_frames(24, 64, 48)


@pytest.fixture(scope="session")
def clip(tmp_path_factory, clip_frames) -> Path:
    """A lossless 64x48, 24-frame, 12 fps clip of moving shapes."""
    return write_clip(tmp_path_factory.mktemp("clip") / "shapes.mkv", clip_frames)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, clip) -> Path:
    """A tiny model fitted for a few epochs; shared by the tests that need any trained model."""
    return _fit_tiny(clip, tmp_path_factory.mktemp("model") / "m", epochs=30)


def _fit_tiny(video: Path, out: Path, epochs: int) -> Path:
    from latentcast.codec.train.loop import train
    from latentcast.codec.train.options import TrainOptions

    train(str(video), out, TrainOptions(minutes=None, epochs=epochs, batch_size=4, latent_dim=64, lr=3e-3,
                                         progress=False))
    return out


@pytest.fixture(scope="session")
def store_with_movie(tmp_path_factory, trained_model, clip):
    """A store holding the synthetic clip, in chunks of 3 frames (8 chunks)."""
    store = Store(tmp_path_factory.mktemp("store") / "s", create=True)
    rec = store.ingest(str(clip), trained_model, title="Shapes", chunk_seconds=0.25, progress=False)
    return store, rec


@pytest.fixture(scope="session")
def offline_frames(store_with_movie, trained_model):
    """What an offline decode of the stored container gives: the ground truth for playback."""
    store, rec = store_with_movie
    with Container(store.movie_path(rec.id)) as c:
        return np.concatenate(list(decode_movie(c, model_decoders(trained_model))))


@pytest.fixture(scope="session")
def long_store(tmp_path_factory, trained_model):
    """An 8-second movie (96 frames at 12 fps, chunks of 3 frames) for tests that need streams to
    stay open a while when the server paces them; returns (store, record, offline frames)."""
    path = write_clip(tmp_path_factory.mktemp("long") / "long.mkv", make_frames(96, 64, 48, seed=1))
    store = Store(tmp_path_factory.mktemp("longstore") / "s", create=True)
    rec = store.ingest(str(path), trained_model, title="Long", chunk_seconds=0.25, progress=False)
    with Container(store.movie_path(rec.id)) as c:
        frames = np.concatenate(list(decode_movie(c, model_decoders(trained_model))))
    return store, rec, frames


@pytest.fixture(scope="session")
def two_scene_clip(tmp_path_factory) -> Path:
    """Two different 24-frame shots back to back: a movie of two scenes (cut at frame 24)."""
    frames = np.concatenate([make_frames(24, 64, 48, seed=0), make_frames(24, 64, 48, seed=5)])
    return write_clip(tmp_path_factory.mktemp("scenes") / "two.mkv", frames)


@pytest.fixture(scope="session")
def parted_model(tmp_path_factory, two_scene_clip) -> Path:
    """A tiny model of the two-scene clip with a decoder part per scene (codec.nn.parts)."""
    from latentcast.codec.train.scene_parts import PartOptions, fit_parts

    out = _fit_tiny(two_scene_clip, tmp_path_factory.mktemp("parted") / "m", epochs=20)
    # A fixed number of passes: under a wall-clock budget a busy machine fit parts that went
    # nowhere, which then ship as the base, and the tests of real parts tested nothing.
    index = fit_parts(str(two_scene_clip), out, PartOptions(epochs=30, sensitivity=4, rd_slope=0, progress=False))
    assert len(index.parts) == 2 and all(p.sha256 != index.base_sha256 for p in index.parts)
    return out

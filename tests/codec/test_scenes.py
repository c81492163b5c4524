"""Scene cuts from latents: where they jump, at least a minimum length apart."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from latentcast.codec.format.errors import UsageError
from latentcast.codec.nn.encode import latents_of
from latentcast.codec.nn.weights import load_encoder
from latentcast.codec.scenes import Scene, jumps, scene_cuts, split_scenes
from synthetic import make_frames


def _shots(lengths, dim=32, seed=0):
    """Latents of shots: each a random point with a slow drift and noise, as frames of a shot move."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in lengths:
        centre = rng.normal(size=dim) * 3
        drift = np.cumsum(rng.normal(scale=0.05, size=(n, dim)), axis=0)
        parts.append(centre + drift + rng.normal(scale=0.05, size=(n, dim)))
    return np.concatenate(parts).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(25, 80), min_size=1, max_size=6), st.integers(0, 1000))
@example([31, 25], 1)  # two scenes: scaling by spread once scored this cut under the default
def test_cuts_fall_where_shots_change(lengths, seed):
    cuts = scene_cuts(_shots(lengths, seed=seed), fps=20)
    assert cuts == list(np.cumsum(lengths)[:-1])


def test_scenes_cover_every_frame_once_and_respect_the_minimum_length():
    z = _shots([30, 5, 40])  # a 5-frame shot is under a second at 20 fps
    scenes = split_scenes(z, fps=20)
    assert scenes[0].start == 0 and scenes[-1].end == 75
    assert all(a.end == b.start for a, b in zip(scenes, scenes[1:]))
    assert all(s.frames >= 20 for s in scenes)
    assert split_scenes(z, fps=20, min_scene_s=0.2) == [Scene(0, 30), Scene(30, 35), Scene(35, 75)]
    assert split_scenes(z[:1], fps=20) == [Scene(0, 1)] and split_scenes(z[:0], fps=20) == []
    with pytest.raises(UsageError):
        scene_cuts(z, fps=20, sensitivity=0.5)


def test_a_trained_encoder_sees_the_cut_between_two_clips(trained_model):
    frames = np.concatenate([make_frames(24, 64, 48, seed=0), make_frames(24, 64, 48, seed=5)])
    latents = latents_of([frames[:16], frames[16:32], frames[32:]], load_encoder(trained_model))
    # The cut's jump stands well above every other step: about 8 times the median, where no step
    # inside either clip reaches 1.5 (the default sensitivity is set on real footage's motion).
    score = jumps(latents)
    assert score.argmax() == 23 and np.delete(score, 23).max() < 2 < score[23] / 3
    assert scene_cuts(latents, fps=12, sensitivity=4) == [24]

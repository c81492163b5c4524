"""The decoder-size ladder: what auto picks for a video's length, and that training builds it."""

import pytest

from latentcast.codec.nn.config import CodecConfig, load_config
from latentcast.codec.train.capacity import AUTO_DECODER_KBPS, auto_capacity
from latentcast.codec.train.presets import PRESETS
from latentcast.codec.train.weight_budget import DEFAULT_WEIGHT_BUDGET


@pytest.mark.parametrize("seconds, expected",
                         [(1, "tiny"), (7, "small"), (14, "medium"), (60, "large"), (3 * 3600, "large")])
def test_auto_fits_the_decoder_to_the_length(seconds, expected):
    assert auto_capacity(320, 180, 512, seconds, DEFAULT_WEIGHT_BUDGET) == expected
    params = CodecConfig.plan(320, 180, capacity=expected).decoder_parameters
    if expected != "tiny":  # the smallest rung is the floor, however short the clip
        assert params * DEFAULT_WEIGHT_BUDGET / seconds / 1000 <= AUTO_DECODER_KBPS


def test_a_smaller_weight_budget_affords_a_bigger_rung():
    assert auto_capacity(320, 180, 512, 14, 2.0) == "large"


def test_training_builds_and_records_the_rung(trained_model):
    cfg = load_config(trained_model)
    assert cfg.trained["capacity"] == "tiny"  # a 2-second test clip
    planned = CodecConfig.plan(cfg.width, cfg.height, cfg.latent_dim, capacity="tiny")
    assert (cfg.stem_channels, cfg.decoder_channels) == (planned.stem_channels, planned.decoder_channels)


def test_the_default_is_a_rung_of_the_ladder(clip, tmp_path):
    """auto picks the decoder's rung and the rung's preset picks the latents, so a 2-second clip
    trains the tiny preset (256 latents); a rung named without --latent-dim gets its own, and a
    given --latent-dim still wins."""
    import latentcast

    runs = {"auto": {}, "small": {"capacity": "small"}, "given": {"latent_dim": 128}}
    for name, given in runs.items():
        latentcast.train(clip, tmp_path / name, epochs=1, batch_size=4, **given)
    got = {name: (load_config(tmp_path / name).trained["capacity"], load_config(tmp_path / name).latent_dim)
           for name in runs}
    assert got == {"auto": ("tiny", PRESETS["tiny"].latent_dim), "small": ("small", PRESETS["small"].latent_dim),
                   "given": ("tiny", 128)}
    assert PRESETS["tiny"].latent_dim != PRESETS["small"].latent_dim  # else this says nothing

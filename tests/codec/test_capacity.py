"""The decoder-size ladder: what auto picks for a video's length, and that training builds it."""

import pytest

from latentcast.codec.nn.config import CodecConfig, load_config
from latentcast.codec.train.capacity import AUTO_DECODER_KBPS, auto_capacity
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

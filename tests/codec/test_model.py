import json

import pytest
import torch

from latentcast.codec.errors import UsageError
from latentcast.codec.model import CodecConfig, build_model, count_parameters, macs_per_pixel, plan_architecture


@pytest.mark.parametrize("w,h,dim", [(64, 48, 64), (33, 17, 32), (320, 180, 512), (100, 300, 512), (1280, 720, 512)])
def test_any_frame_size_round_trips_shape(w, h, dim):
    cfg = CodecConfig.plan(w, h, dim)
    model = build_model(cfg).eval()
    with torch.no_grad():
        x = torch.rand(2, 3, h, w)
        z = model.encoder(x)
        y = model.decoder(z)
    assert z.shape == (2, dim)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_grid_follows_aspect_ratio():
    channels, gh, gw, strides = plan_architecture(320, 180, 512)
    assert channels * gh * gw == 512
    s = 1
    for f in strides:
        s *= f
    assert gh * s >= 180 and gw * s >= 320
    # padding waste stays small for 16:9
    assert (gh * s * gw * s) / (320 * 180) < 1.3


@pytest.mark.parametrize("dim", [0, -3])
def test_bad_latent_dim(dim):
    with pytest.raises(UsageError, match="latent"):
        CodecConfig.plan(64, 48, dim)


def test_config_json_round_trip_and_rejects_unknown_keys():
    cfg = CodecConfig.plan(64, 48, 64)
    again = CodecConfig.from_json(cfg.to_json())
    assert again == cfg
    with pytest.raises(ValueError):
        CodecConfig.from_json(cfg.to_json().replace('"width"', '"wdth"'))


def test_macs_per_pixel_counts_convs():
    cfg = CodecConfig.plan(64, 48, 64)
    dec = build_model(cfg).decoder
    head = dec.head[0]
    # the shuffle head costs in*3*9 per output pixel; the stages below it add to that
    assert macs_per_pixel(dec) > head.in_channels * 3 * 9
    assert count_parameters(dec) > 0


def test_shuffle_head_keeps_wide_convs_off_full_resolution():
    cfg = CodecConfig.plan(320, 180, 512)
    assert cfg.head == "shuffle" and len(cfg.decoder_channels) == len(cfg.strides) - 1
    fast = build_model(cfg).decoder
    legacy_cfg = CodecConfig.plan(320, 180, 512, head="conv", decoder_channels=(64, 32, 16))
    legacy = build_model(legacy_cfg).decoder
    assert macs_per_pixel(fast) < 0.5 * macs_per_pixel(legacy)
    # the head's PixelShuffle makes RGB directly: 3 channels at full resolution, nothing wider
    assert fast.head[0].out_channels == 3 * cfg.strides[-1] ** 2


def test_configs_from_before_the_shuffle_head_still_load():
    cfg = CodecConfig.plan(64, 48, 64, head="conv", weight_bits=8, decoder_channels=(64, 48, 32, 24, 16))
    raw = json.loads(cfg.to_json())
    del raw["head"], raw["weight_bits"]  # an old config.json has neither key
    old = CodecConfig.from_json(json.dumps(raw))
    assert old.head == "conv" and old.weight_bits == 8
    y = build_model(old).decoder(torch.randn(1, 64))
    assert y.shape == (1, 3, 48, 64)


@pytest.mark.parametrize("key,value", [("head", "bogus"), ("weight_bits", 99), ("weight_bits", 5.5),
                                       ("decoder_channels", [8]), ("weight_layer_bits", {"stem.weight": 3}),
                                       ("weight_layer_bits", {"stem.weight": 5.1}),
                                       ("weight_layer_bits", {"stem.weight": "8"}), ("weight_layer_bits", [8])])
def test_a_config_with_a_bad_head_or_width_is_refused_on_load(key, value):
    raw = json.loads(CodecConfig.plan(64, 48, 64).to_json())
    raw[key] = value
    with pytest.raises(ValueError):
        CodecConfig.from_json(json.dumps(raw))


def test_per_layer_weight_widths_survive_the_config_file():
    cfg = CodecConfig.plan(64, 48, 64, weight_layer_bits={"stem.weight": 7.75, "head.0.weight": 8})
    back = CodecConfig.from_json(cfg.to_json())
    assert back.weight_layer_bits == cfg.weight_layer_bits
    assert back.weight_width("stem.weight") == 7.75 and back.weight_width("stages.0.0.weight") == cfg.weight_bits


def test_mismatched_widths_and_heads_are_usage_errors():
    with pytest.raises(UsageError, match="decoder widths"):
        CodecConfig.plan(320, 180, 512, decoder_channels=(64, 32, 16))
    with pytest.raises(UsageError, match="head"):
        CodecConfig.plan(320, 180, 512, head="sigmoid")
    with pytest.raises(UsageError, match="weight-bits"):
        CodecConfig.plan(320, 180, 512, weight_bits=3)


def test_trained_bits_is_the_qat_width_or_the_default():
    from latentcast.codec.quantize import DEFAULT_BITS

    cfg = CodecConfig.plan(64, 48, 32)
    assert cfg.trained_bits == DEFAULT_BITS
    cfg.trained = {"qat_bits": 5}
    assert cfg.trained_bits == 5
    for bad in (99, "x", None):  # a hand-edited config falls back instead of failing the encode
        cfg.trained = {"qat_bits": bad}
        assert cfg.trained_bits == DEFAULT_BITS

import dataclasses
import json

import pytest
import torch

from latentcast.codec.format.errors import UsageError
from latentcast.codec.nn.config import LEGACY_FIELDS, CodecConfig, plan_architecture, upgrade_config
from latentcast.codec.nn.model import build_model, count_parameters, macs_per_pixel


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


def test_the_viewer_config_is_the_same_decoder_without_the_training_log():
    cfg = dataclasses.replace(CodecConfig.plan(64, 48, 64), encoder_sha256="e" * 64, decoder_sha256="d" * 64,
                              trained={"bf16_loss_db": 0.004, "qat_bits": 2, "log": ["x" * 500]})
    sent = cfg.viewer_json()
    again = CodecConfig.from_json(sent)
    # Every field a decoder is built from, and what `auto` reads to choose bf16, arrives as it was.
    assert dataclasses.replace(again, encoder_sha256=cfg.encoder_sha256, trained=cfg.trained) == cfg
    assert again.trained == {"bf16_loss_db": 0.004} and again.encoder_sha256 == ""
    assert len(sent) < len(cfg.to_json()) - 500 and "\n" not in sent  # counted in every total: kept small


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
                                       ("decoder_channels", [8]), ("weight_layer_bits", {"stem.weight": 1.5}),
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
        CodecConfig.plan(320, 180, 512, weight_bits=1)


def test_trained_bits_is_the_qat_width_or_the_default():
    from latentcast.codec.format.quantizer import DEFAULT_BITS

    cfg = CodecConfig.plan(64, 48, 32)
    assert cfg.trained_bits == DEFAULT_BITS
    cfg.trained = {"qat_bits": 5}
    assert cfg.trained_bits == 5
    for bad in (99, "x", None):  # a hand-edited config falls back instead of failing the encode
        cfg.trained = {"qat_bits": bad}
        assert cfg.trained_bits == DEFAULT_BITS


@pytest.mark.parametrize("w,h,dim", [(64, 48, 64), (50, 30, 64), (33, 17, 32)])
def test_training_in_blocks_is_the_same_function_as_on_frames(w, h, dim):
    # The trainer fits the head's output to the frame as s x s blocks; the loss and every
    # gradient must equal those of the cropped frame, padding left out (50x30 and 33x17 pad).
    torch.manual_seed(0)
    model = build_model(CodecConfig.plan(w, h, dim)).double()
    frames = (torch.rand(2, h, w, 3) * 255).to(torch.uint8)
    x = frames.permute(0, 3, 1, 2).double() / 255
    on_frames = torch.mean((model(x) - x) ** 2)
    grads_frames = torch.autograd.grad(on_frames, list(model.parameters()))
    blocks = model.to_blocks(frames).double()
    y = model(blocks, blocks=True)
    on_blocks = ((y - blocks) ** 2 * model.block_mask().double()).sum() / (2 * 3 * h * w)
    grads_blocks = torch.autograd.grad(on_blocks, list(model.parameters()))
    assert on_blocks.item() == pytest.approx(on_frames.item(), rel=1e-6)
    for a, b in zip(grads_frames, grads_blocks):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-8)
    assert torch.allclose(model.from_blocks(blocks), x, atol=1e-6)
    assert torch.allclose(model.from_blocks(y), model(x), atol=1e-6)


def test_only_a_shuffle_head_trains_in_blocks():
    legacy = build_model(CodecConfig.plan(64, 48, 64, head="conv", decoder_channels=(64, 48, 32, 24, 16)))
    assert not legacy.trains_in_blocks
    with pytest.raises(ValueError, match="shuffle head"):
        legacy.decoder(torch.randn(1, 64), blocks=True)


def test_field_defaults_are_todays_architecture_and_old_configs_say_what_they_were():
    fields = {f.name: f.default for f in dataclasses.fields(CodecConfig)}
    planned = CodecConfig.plan(320, 180)
    for name in ("stem_channels", "head", "weight_bits", "latent_dim", "architecture"):
        assert getattr(planned, name) == fields[name], name
    raw = json.loads(planned.to_json())
    for name in LEGACY_FIELDS:
        del raw[name]
    old = upgrade_config(raw)
    assert {k: old[k] for k in LEGACY_FIELDS} == {"stem_channels": 96, "head": "conv", "weight_bits": 8}
    # a field the file names is never overridden by the compatibility step
    assert upgrade_config(json.loads(planned.to_json()))["head"] == "shuffle"


@pytest.mark.parametrize("head", ["shuffle", "dwshuffle", "conv"])
def test_every_capacity_counts_its_decoder_weights_without_building_it(head):
    from latentcast.codec.nn.config import CAPACITIES

    sizes = []
    for name in CAPACITIES:
        for w, h in ((320, 180), (128, 96)):
            cfg = CodecConfig.plan(w, h, 256, capacity=name, head="shuffle" if head == "conv" else head)
            if head == "conv":
                cfg = CodecConfig.plan(w, h, 256, capacity=name, head="conv",
                                       decoder_channels=cfg.decoder_channels + (16,))
            assert cfg.decoder_parameters == count_parameters(build_model(cfg).decoder), (name, w, h)
        sizes.append(CodecConfig.plan(320, 180, capacity=name).decoder_parameters)
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # a ladder: each rung bigger
    assert CodecConfig.plan(320, 180).decoder_parameters == 823595  # "large", every earlier model's size
    with pytest.raises(UsageError, match="unknown capacity"):
        CodecConfig.plan(320, 180, capacity="giant")

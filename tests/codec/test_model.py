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
    head = dec.head
    # the head alone costs in*out*9 per canvas pixel; the total must exceed it
    assert macs_per_pixel(dec) > head.in_channels * 3 * 9
    assert count_parameters(dec) > 0

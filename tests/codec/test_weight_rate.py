import pytest
import torch

from latentcast.codec.format.errors import UsageError
from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.nn.model import build_model, set_weight_fake_quant
from latentcast.codec.nn.weight_codes import quantize_weight
from latentcast.codec.train.loop import train
from latentcast.codec.train.options import TrainOptions
from latentcast.codec.train.weight_budget import coded_size
from latentcast.codec.train.weight_rate import code_bits, download_bits, weight_rate_loss


def _coded_bytes(decoder, bits):
    return sum(coded_size(quantize_weight(w, bits)[0]) for w in decoder.state_dict().values() if w.ndim >= 2)


def test_the_rate_term_waits_for_the_weight_codes():
    dec = build_model(CodecConfig.plan(64, 48, 32)).decoder
    assert code_bits(dec) is None
    assert weight_rate_loss(dec, torch.tensor(0.01), 6.0, 1e6) is None
    set_weight_fake_quant(dec, 3)
    assert code_bits(dec).item() > 0


def test_descending_the_rate_term_makes_the_codes_cheaper():
    torch.manual_seed(0)
    dec = build_model(CodecConfig.plan(64, 48, 32)).decoder
    set_weight_fake_quant(dec, 4)
    before = _coded_bytes(dec, 4)
    opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
    for _ in range(40):
        opt.zero_grad()
        weight_rate_loss(dec, torch.tensor(1.0), 6.0, 1.0).backward()
        opt.step()
    assert _coded_bytes(dec, 4) < 0.8 * before


def test_a_steeper_slope_ships_a_smaller_decoder(clip, tmp_path):
    def fit(slope):
        opts = TrainOptions(minutes=None, epochs=8, batch_size=4, latent_dim=32, weight_qat_from=0.3,
                            weight_rate_slope=slope, progress=False)
        return train(str(clip), tmp_path / f"s{slope}", opts)

    plain, pulled = fit(0.0), fit(200.0)
    assert pulled["decoder_bytes_sent"] < plain["decoder_bytes_sent"]
    # the same widths were chosen: the bytes came from the codes, not from narrower ones
    assert pulled["weight_widths"] == plain["weight_widths"]


def test_the_download_counts_decoder_and_latents():
    dec = build_model(CodecConfig.plan(64, 48, 32)).decoder
    n = sum(p.numel() for p in dec.parameters())
    assert download_bits(dec, 3.0, 0, 32, 3) == n * 3.0
    assert download_bits(dec, 3.0, 100, 32, 3) > n * 3.0


def test_a_negative_slope_is_refused():
    with pytest.raises(UsageError, match="--weight-rate-slope"):
        TrainOptions(weight_rate_slope=-1).validate()

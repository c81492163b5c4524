import math

import pytest
import torch

from latentcast.codec.format.errors import UsageError
from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.nn.model import build_model, set_weight_fake_quant
from latentcast.codec.nn.weight_codes import quantize_weight
from latentcast.codec.train.loop import train
from latentcast.codec.train.options import TrainOptions
from latentcast.codec.train.weight_budget import coded_size
from latentcast.codec.train.weight_rate import WeightRatePull, download_bits, laplace_code_bits


def _coded_bytes(decoder, bits):
    return sum(coded_size(quantize_weight(w, bits)[0]) for w in decoder.state_dict().values() if w.ndim >= 2)


def test_the_rate_term_waits_for_the_weight_codes():
    dec = build_model(CodecConfig.plan(64, 48, 32)).decoder
    assert not WeightRatePull(6.0, 1e6).add_gradient(dec, torch.tensor(0.01))
    assert all(p.grad is None for p in dec.parameters())


def test_the_gradient_is_the_laplace_code_lengths():
    torch.manual_seed(0)
    dec = build_model(CodecConfig.plan(64, 48, 32)).decoder
    set_weight_fake_quant(dec, 3)
    mse, slope, total = torch.tensor(0.004), 6.0, 2e5
    assert WeightRatePull(slope, total).add_gradient(dec, mse)
    written = {n: p.grad.clone() for n, p in dec.named_parameters() if p.grad is not None}
    dec.zero_grad(set_to_none=True)
    price = mse * math.log(10) / 10 * slope / (total * math.log(2))
    (price * laplace_code_bits([p for p in dec.parameters() if p.ndim >= 2], 3)).backward()
    assert set(written) == {n for n, p in dec.named_parameters() if p.ndim >= 2}
    for name, p in dec.named_parameters():
        if name in written:
            torch.testing.assert_close(written[name], p.grad, rtol=1e-4, atol=1e-12)


def test_descending_the_rate_term_makes_the_codes_cheaper():
    torch.manual_seed(0)
    dec = build_model(CodecConfig.plan(64, 48, 32)).decoder
    set_weight_fake_quant(dec, 4)
    before = _coded_bytes(dec, 4)
    opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
    pull = WeightRatePull(6.0, 1.0)
    for _ in range(40):
        opt.zero_grad()
        pull.add_gradient(dec, torch.tensor(1.0))
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

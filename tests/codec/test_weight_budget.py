import pytest
import torch

from latentcast.codec.format.decoder_file import compress_decoder
from latentcast.codec.format.errors import UsageError
from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.nn.model import build_model
from latentcast.codec.nn.weights import int8_state_bytes
from latentcast.codec.train.weight_budget import (
    WIDTHS,
    allocate_weight_bits,
    check_weight_budget,
    choose_widths,
    measure_layers,
)


@pytest.fixture(scope="module")
def decoder_and_latents():
    torch.manual_seed(0)
    dec = build_model(CodecConfig.plan(64, 48, 64)).decoder.eval()
    return dec, torch.randn(4, 64)


def _sent(dec):
    return lambda widths: len(compress_decoder(int8_state_bytes(dec, widths)))


def _error(dec, latents, widths):
    from latentcast.codec.nn.model import set_weight_fake_quant

    with torch.no_grad():
        ref = dec(latents)
        set_weight_fake_quant(dec, widths)
        out = dec(latents)
        set_weight_fake_quant(dec, None)
    return torch.mean((out - ref) ** 2).item()


def test_the_chosen_widths_fit_the_budget_and_a_bigger_budget_buys_accuracy(decoder_and_latents):
    dec, z = decoder_and_latents
    n = sum(p.numel() for p in dec.parameters())
    chosen = {b: allocate_weight_bits(dec, z, b, _sent(dec)) for b in (4.0, 5.0, 6.5)}
    for budget, widths in chosen.items():
        assert _sent(dec)(widths) <= budget * n / 8, (budget, widths)
        assert set(widths.values()) <= set(WIDTHS)
    sizes = [_sent(dec)(chosen[b]) for b in (4.0, 5.0, 6.5)]
    errors = [_error(dec, z, chosen[b]) for b in (4.0, 5.0, 6.5)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert errors[0] > errors[1] > errors[2]
    # Not one width for all: the layers differ in what a bit is worth.
    assert len(set(chosen[5.0].values())) > 1


def test_an_impossible_budget_gives_the_narrowest_codes(decoder_and_latents):
    dec, z = decoder_and_latents
    # ternary codes can fit 1 bit a weight, so a fixed overhead makes the budget unreachable
    widths = allocate_weight_bits(dec, z, 1.0, lambda w: _sent(dec)(w) + 10**6)
    assert set(widths.values()) == {WIDTHS[0]}


def test_narrowing_takes_the_cheapest_error_per_byte_first():
    # "big" saves 100 bytes a step for little error; "small" saves 2 bytes for a lot.
    costs = {"big": {w: (int(100 * w), 0.001 * (8 - w)) for w in WIDTHS},
             "small": {w: (int(2 * w), 1.0 * (8 - w)) for w in WIDTHS}}
    widths = choose_widths(costs, lambda w: sum(costs[n][b][0] for n, b in w.items()) <= 616)
    assert widths == {"big": 6.0, "small": 8.0}


def test_measured_error_falls_with_width(decoder_and_latents):
    dec, z = decoder_and_latents
    costs = measure_layers(dec, z)
    assert set(costs) == {k for k, v in dec.state_dict().items() if v.ndim >= 2}
    for name, by_width in costs.items():
        assert by_width[4.0][0] < by_width[8.0][0], name
        assert by_width[4.0][1] > by_width[8.0][1], name


@pytest.mark.parametrize("budget", [0.5, 0, 17, -3])
def test_a_budget_out_of_range_is_refused(budget):
    with pytest.raises(UsageError, match="weight-budget"):
        check_weight_budget(budget)

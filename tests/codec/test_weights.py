import math
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import load as np_load
from safetensors.torch import load as st_load

from latentcast.codec.format.decoder_file import compress_decoder, decompress_decoder, sha256_bytes
from latentcast.codec.format.decoder_state import dequantize_state, load_state_verified
from latentcast.codec.format.errors import ModelError
from latentcast.codec.nn.config import CodecConfig, top_code
from latentcast.codec.nn.model import build_model, set_weight_fake_quant
from latentcast.codec.nn.tensors import to_uint8
from latentcast.codec.nn.weight_codes import dequantize_weight, fake_quantize_weight, quantize_weight
from latentcast.codec.nn.weights import (
    int8_state_bytes,
    load_decoder_bytes,
    load_state_into,
    shipped_widths,
    state_to_bytes,
)


def test_int8_decoder_is_small_and_close():
    torch.manual_seed(0)
    cfg = CodecConfig.plan(64, 48, 64)
    dec = build_model(cfg).decoder.eval()
    fp32 = state_to_bytes(dec)
    q = int8_state_bytes(dec)
    assert len(q) < 0.3 * len(fp32)
    assert len(compress_decoder(q)) < len(q)
    cfg.decoder_sha256 = sha256_bytes(q)
    back = load_decoder_bytes(q, cfg)
    for (name, a), b in zip(dec.state_dict().items(), back.state_dict().values()):
        step = a.abs().max() / 127
        assert (a - b).abs().max() <= step * 0.51 + 1e-3 * a.abs().max(), name
    z = torch.randn(3, 64)
    with torch.no_grad():
        assert (dec(z) - back(z)).abs().mean() < 0.02


def _old_wire(data: bytes) -> bytes:
    """The download as it was coded before the rANS spans: bare zstd frames, one per span."""
    from latentcast.codec.format.compress import compressor
    from latentcast.codec.format.decoder_file import _frame_spans

    return b"".join(compressor().compress(data[a:b]) for a, b, _ in _frame_spans(data))


def test_the_download_codes_each_tensor_and_old_zstd_downloads_still_load():
    import zstandard

    from latentcast.codec.format.decoder_file import SPAN_RANS, WIRE_MAGIC, wire_spans

    torch.manual_seed(0)
    dec = build_model(CodecConfig.plan(128, 96, 256)).decoder.eval()
    dense = int8_state_bytes(dec, 6)
    with torch.no_grad():  # as if pruned: 85 % of every conv's weights zero
        for p in dec.parameters():
            if p.ndim >= 2:
                p.mul_((torch.rand_like(p) < 0.15).float())
    data = int8_state_bytes(dec, 6)
    wire = compress_decoder(data)
    assert wire.startswith(WIRE_MAGIC) and decompress_decoder(wire, len(data)) == data
    old = _old_wire(data)
    # Sparse codes are where rANS beats zstd clearly (zstd spends at least a bit on a literal)
    assert SPAN_RANS in [kind for kind, _, _ in wire_spans(wire)]
    assert len(wire) < 0.9 * min(len(old), len(zstandard.ZstdCompressor(level=19).compress(data)))
    # Dense codes, where zstd is within a percent of their entropy, keep zstd's faster decode
    dense_wire = compress_decoder(dense)
    assert decompress_decoder(dense_wire, len(dense)) == dense
    spans = [kind for kind, _, _ in wire_spans(dense_wire)]
    assert SPAN_RANS not in spans
    assert len(dense_wire) == len(_old_wire(dense)) + len(WIRE_MAGIC) + 9 * len(spans)  # the framing alone
    single = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(data)
    for earlier in (old, single):
        assert decompress_decoder(earlier, len(data)) == data
    for cut in (len(wire) - 3, len(wire) // 2, 7):
        with pytest.raises(ModelError):
            decompress_decoder(wire[:cut], len(data))
    with pytest.raises(ModelError):
        decompress_decoder(wire, len(data) - 1)  # a span would inflate past what was announced
    with pytest.raises(ModelError):
        decompress_decoder(wire + b"\1", len(data))


def test_decompress_is_bounded():
    data = compress_decoder(b"x" * 1000)
    assert decompress_decoder(data, 1000) == b"x" * 1000
    with pytest.raises(ModelError):
        decompress_decoder(data, 999)  # would have to inflate past what was announced
    with pytest.raises(ModelError, match="out of range"):
        decompress_decoder(data, 1 << 40)


def test_oversized_or_malformed_safetensors_header_is_refused_before_parsing():
    huge = struct.pack("<Q", 1 << 60) + b"{}"
    with pytest.raises(ModelError, match="header claims"):
        load_state_verified(huge, sha256_bytes(huge), "x")
    bad_json = struct.pack("<Q", 4) + b"{{{{"
    with pytest.raises(ModelError, match="not valid JSON"):
        load_state_verified(bad_json, sha256_bytes(bad_json), "x")


def test_per_layer_and_fractional_widths_reach_the_file_and_match_fake_quantization():
    torch.manual_seed(0)
    widths = {"stem.weight": 8, "stages.0.0.weight": 5.25, "stages.1.0.weight": 4.5}
    cfg = CodecConfig.plan(64, 48, 64, weight_layer_bits=widths)
    dec = build_model(cfg).decoder.eval()
    assert set(shipped_widths(dec)) > set(widths)  # every weight has a width, the rest weight_bits
    data = int8_state_bytes(dec, shipped_widths(dec))
    state = st_load(data)
    for name, bits in shipped_widths(dec).items():
        assert int(state[name].abs().max()) == top_code(bits), name
    assert top_code(5.25) == 18 and top_code(4.5) == 10 and top_code(6) == 31
    cfg.decoder_sha256 = sha256_bytes(data)
    shipped = load_decoder_bytes(data, cfg)
    set_weight_fake_quant(dec, shipped_widths(dec))
    z = torch.randn(2, 64)
    with torch.no_grad():
        assert torch.allclose(dec(z), shipped(z), atol=1e-4)


def test_malformed_int8_state_is_refused():
    with pytest.raises(ModelError, match="malformed int8"):
        dequantize_state({"w": np.zeros((4, 4), np.float32), "w.qscale": np.ones(4, np.float32)})


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_weight_codes_stay_in_range_and_fake_quant_matches_the_shipped_file(bits):
    torch.manual_seed(0)
    cfg = CodecConfig.plan(64, 48, 64, weight_bits=bits)
    dec = build_model(cfg).decoder.eval()
    data = int8_state_bytes(dec, bits)
    state = st_load(data)
    top = (1 << (bits - 1)) - 1
    codes = [v for k, v in state.items() if v.dtype == torch.int8]
    assert codes and all(int(v.abs().max()) <= top for v in codes)
    assert max(int(v.abs().max()) for v in codes) == top  # max-abs scaling uses the top code
    cfg.decoder_sha256 = sha256_bytes(data)
    shipped = load_decoder_bytes(data, cfg)
    # what training sees under fake quantization is what a client decodes with
    set_weight_fake_quant(dec, bits)
    z = torch.randn(2, 64)
    with torch.no_grad():
        assert torch.allclose(dec(z), shipped(z), atol=1e-4)


def test_fake_quantized_weights_pass_gradients_straight_through():
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    fake_quantize_weight(w, 5).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


@pytest.mark.parametrize("bits", [4, 5.25, 6, 8])
def test_fake_quantized_weights_are_the_shipped_weights_bit_for_bit(bits):
    torch.manual_seed(0)
    w = (torch.randn(16, 8, 3, 3) * torch.rand(16, 1, 1, 1)).to(memory_format=torch.channels_last)
    assert torch.equal(fake_quantize_weight(w, bits), dequantize_weight(*quantize_weight(w, bits)))


def test_fewer_weight_bits_never_ship_more_bytes():
    torch.manual_seed(0)
    dec = build_model(CodecConfig.plan(64, 48, 64)).decoder
    sizes = [len(compress_decoder(int8_state_bytes(dec, b))) for b in (4, 5, 6, 7, 8)]
    assert sizes == sorted(sizes) and sizes[0] < 0.8 * sizes[-1], sizes


def test_channels_last_decoder_matches_the_plain_layout_within_a_hundredth_of_a_db():
    torch.manual_seed(1)
    cfg = CodecConfig.plan(96, 64, 64)
    dec = build_model(cfg).decoder.eval()
    data = int8_state_bytes(dec, cfg.weight_bits)
    cfg.decoder_sha256 = sha256_bytes(data)
    fast = load_decoder_bytes(data, cfg)
    assert fast.stages[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = build_model(cfg).decoder.eval()
    load_state_into(plain, np_load(data), "decoder")
    z = torch.randn(4, 64)
    with torch.inference_mode():
        a = np.concatenate([to_uint8(plain(z[i : i + 1])) for i in range(4)]).astype(int)
        b = np.concatenate([to_uint8(fast(z[i : i + 1])) for i in range(4)]).astype(int)
    assert np.abs(a - b).max() <= 1
    mse = float(((a - b) ** 2).mean())
    assert mse == 0 or 10 * math.log10(255**2 / mse) > 60  # > 60 dB apart: far below 0.01 dB of any real PSNR

import struct

import pytest
import torch

from latentcast.codec.errors import ModelError
from latentcast.codec.model import CodecConfig, build_model
from latentcast.codec.weights import (compress_decoder, decompress_decoder, dequantize_state, int8_state_bytes,
                                      load_decoder_bytes, load_state_verified, sha256_bytes, state_to_bytes)


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


def test_malformed_int8_state_is_refused():
    with pytest.raises(ValueError):
        dequantize_state({"w": torch.zeros(4, 4), "w.qscale": torch.ones(4)})

import numpy as np
import pytest
import torch
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentcast.codec.format.chunks import decode_chunk, encode_chunk, symbols_per_byte
from latentcast.codec.format.errors import CorruptContainer, UsageError
from latentcast.codec.format.quantizer import HALF_MAX, Quantizer, half_ranges, latent_range
from latentcast.codec.train.latent_noise import add_quantization_noise, fake_quantize


def test_quantization_error_is_at_most_half_a_step_inside_the_range():
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(50, 32)).astype(np.float32) * rng.uniform(0.1, 5, 32).astype(np.float32)
    for bits in range(1, 9):
        q = Quantizer.fit(lat, bits)
        codes = q.quantize(lat)
        assert codes.max() <= (1 << bits) - 1
        inside = np.clip(lat, q.lo, q.hi)
        # Values outside a clipped range land on its end levels.
        assert np.all(np.abs(q.dequantize(codes) - inside) <= q.step / 2 + 1e-5)


def test_two_bits_clip_the_outliers_and_code_the_rest_closer():
    rng = np.random.default_rng(1)
    lat = rng.normal(size=(2000, 16)).astype(np.float32)
    lat[::250] *= 6  # a few frames far out in every dimension
    fitted = Quantizer.fit(lat, 2)
    assert np.all(fitted.hi < lat.max(0)) and np.all(fitted.lo > lat.min(0))
    by_extremes = Quantizer(2, lat.min(0), lat.max(0))
    mse = lambda q: float(np.mean((q.dequantize(q.quantize(lat)) - lat) ** 2))
    assert mse(fitted) < 0.8 * mse(by_extremes)
    # At 4 bits the extremes are the range, rounded outward to float16 as the container stores it.
    four = Quantizer.fit(lat, 4)
    assert np.array_equal(four.lo, half_ranges(lat.min(0), lat.max(0))[0])
    assert np.all(four.lo <= lat.min(0)) and np.all(four.hi >= lat.max(0))


@given(hnp.arrays(np.float32, 8, elements=st.floats(-7e4, 7e4, width=32)),
       hnp.arrays(np.float32, 8, elements=st.floats(0, 7e4, width=32)))
def test_half_ranges_round_outward_to_float16_values(lo, span):
    hi = np.minimum(lo + span, np.float32(7e4))
    lo16, hi16 = half_ranges(lo, hi)
    assert np.array_equal(lo16.astype(np.float16).astype(np.float32), lo16)
    assert np.array_equal(hi16.astype(np.float16).astype(np.float32), hi16)
    inside = np.abs(lo) <= HALF_MAX
    assert np.all(lo16[inside] <= lo[inside]) and np.all(hi16[np.abs(hi) <= HALF_MAX] >= hi[np.abs(hi) <= HALF_MAX])


@pytest.mark.parametrize("bits", [2, 4])
def test_latent_range_reads_a_memmap_like_an_array(tmp_path, bits):
    lat = np.random.default_rng(2).normal(size=(5000, 8)).astype(np.float32)
    path = tmp_path / "latents.f32"
    lat.tofile(path)
    mapped = np.memmap(path, np.float32, "r", shape=lat.shape)
    for a, b in zip(latent_range(mapped, bits), latent_range(lat, bits)):
        assert np.array_equal(a, b)


def test_constant_dimension_does_not_divide_by_zero():
    lat = np.zeros((4, 3), np.float32)
    lat[:, 1] = 2.5
    q = Quantizer.fit(lat, 6)
    assert np.allclose(q.dequantize(q.quantize(lat)), lat)


def test_bits_out_of_range():
    with pytest.raises(UsageError):
        Quantizer.fit(np.zeros((2, 2), np.float32), 9)
    with pytest.raises(UsageError):
        Quantizer.fit(np.zeros((2, 2), np.float32), 0)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), n=st.integers(1, 30), dim=st.integers(1, 40), seed=st.integers(0, 2**16),
       packed=st.booleans())
def test_chunk_coding_is_bit_exact(bits, n, dim, seed, packed):
    q = np.random.default_rng(seed).integers(0, 1 << bits, size=(n, dim)).astype(np.uint8)
    assert np.array_equal(decode_chunk(encode_chunk(q, bits, packed), n, dim, bits, packed), q)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5])
def test_packing_holds_several_symbols_a_byte(bits):
    q = np.random.default_rng(bits).integers(0, 1 << bits, size=(37, 11)).astype(np.uint8)
    raw = zstandard.ZstdDecompressor().decompress(encode_chunk(q, bits))
    per = {1: 8, 2: 4, 3: 2, 4: 2, 5: 1}[bits]
    assert symbols_per_byte(bits) == per and len(raw) == -(-q.size // per)
    unpacked = zstandard.ZstdDecompressor().decompress(encode_chunk(q, bits, packed=False))
    assert len(unpacked) == q.size


def test_packing_makes_low_bit_chunks_smaller():
    # Latents that mostly sit still: symbols are mostly 0, so a byte per symbol wastes most of it.
    rng = np.random.default_rng(1)
    q = np.cumsum(rng.random((40, 512)) < 0.2, axis=0).astype(np.uint8) & 3
    assert len(encode_chunk(q, 2)) < 0.9 * len(encode_chunk(q, 2, packed=False))


@pytest.mark.parametrize("bits,raw", [(3, bytes([0b11000000, 0])), (2, bytes([0, 0b11000000]))])
def test_packed_payload_with_stray_bits_is_refused(bits, raw):
    # 3 bits: the top two bits of a byte hold no symbol. 2 bits, 5 symbols in 2 bytes: the
    # last three fields of the second byte are padding.
    with pytest.raises(CorruptContainer):
        decode_chunk(zstandard.ZstdCompressor().compress(raw), 1 if bits == 3 else 5, 4 if bits == 3 else 1, bits)


def test_smooth_latents_compress_below_raw_size():
    t = np.arange(40)[:, None]
    q = ((np.sin(t / 10 + np.arange(64)) + 1) * 31).round().astype(np.uint8)
    assert len(encode_chunk(q, 6)) < q.size / 2


def test_damaged_payload_is_reported():
    q = np.ones((5, 8), np.uint8)
    payload = bytearray(encode_chunk(q, 6))
    with pytest.raises(CorruptContainer):
        decode_chunk(bytes(payload[:-3]), 5, 8, 6)
    with pytest.raises(CorruptContainer):
        decode_chunk(encode_chunk(q, 6), 6, 8, 6)  # wrong frame count


def test_fake_quantize_matches_numpy_and_passes_gradient():
    lat = torch.randn(6, 10, requires_grad=True)
    lo, hi = lat.detach().min(0).values, lat.detach().max(0).values
    out = fake_quantize(lat, lo, hi, 4)
    ref = Quantizer(4, lo.numpy(), hi.numpy())
    expect = ref.dequantize(ref.quantize(lat.detach().numpy()))
    assert np.allclose(out.detach().numpy(), expect, atol=1e-5)
    out.sum().backward()
    assert torch.allclose(lat.grad, torch.ones_like(lat))


@pytest.mark.parametrize("bits", [2, 4])
def test_quantization_noise_is_one_step_wide_and_passes_gradient(bits):
    torch.manual_seed(0)
    lat = (torch.randn(8192, 3) * torch.tensor([0.1, 1.0, 10.0])).requires_grad_()
    lo, hi = lat.detach().min(0).values, lat.detach().max(0).values
    out = add_quantization_noise(lat, lo, hi, bits)
    step = torch.from_numpy(Quantizer(bits, lo.numpy(), hi.numpy()).step)
    noise = (out - lat).detach()
    assert (noise.abs() <= step / 2 + 1e-6).all()
    # uniform over one step: its spread is step / sqrt(12) in every dimension, whatever the scale
    torch.testing.assert_close(noise.std(0), step / 12 ** 0.5, rtol=0.05, atol=0)
    out.sum().backward()
    assert torch.equal(lat.grad, torch.ones_like(lat))


"""Encode-time latent refinement (codec.nn.refine): codes fitted to the decoder a viewer gets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentcast
from latentcast.codec import video
from latentcast.codec.format.container import Container
from latentcast.codec.format.quantizer import Quantizer
from latentcast.codec.nn.config import load_config
from latentcast.codec.nn.encode import latents_of
from latentcast.codec.nn.model import Decoder
from latentcast.codec.nn.part_index import model_parts
from latentcast.codec.nn.refine import refine_latents, refine_span, torch_decoder_at
from latentcast.codec.nn.weights import load_decoder, load_encoder
from latentcast.codec.runtime.decode import decode_movie
from latentcast.codec.runtime.scene_decoders import model_decoders


def _frame_errors(decoder: Decoder, frames: np.ndarray, latents: np.ndarray, quant: Quantizer) -> np.ndarray:
    """Each frame's squared error when its latents are coded by ``quant`` and decoded."""
    with torch.no_grad():
        out = decoder(torch.from_numpy(quant.dequantize(quant.quantize(latents)))).clamp(0, 1)
        target = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        return (out - target).square().mean((1, 2, 3)).numpy()


def _mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean((1, 2, 3))


def test_refining_never_raises_a_frames_error_and_lowers_the_total(trained_model, clip_frames):
    decoder = load_decoder(trained_model)
    for p in decoder.parameters():
        p.requires_grad_(False)
    latents = latents_of([clip_frames], load_encoder(trained_model))
    quant = Quantizer.fit(latents, 3)
    refined = refine_latents(decoder, clip_frames, latents, quant, steps=20)
    before = _frame_errors(decoder, clip_frames, latents, quant)
    after = _frame_errors(decoder, clip_frames, refined, quant)
    assert (after <= before * (1 + 1e-5)).all()
    assert after.mean() < 0.99 * before.mean()
    # Inside the ranges the codes were refined under, so the same quantizer carries them.
    assert (refined >= quant.lo - 1e-6).all() and (refined <= quant.hi + 1e-6).all()
    assert np.array_equal(refine_latents(decoder, clip_frames, latents, quant, steps=0), latents)
    # What is returned sits on the grid, so coding it gives the codes that were measured.
    np.testing.assert_allclose(quant.dequantize(quant.quantize(refined)), refined, atol=1e-5)


def test_an_encode_refines_against_the_decoder_in_the_same_ranges(trained_model, clip, clip_frames, tmp_path):
    plain = latentcast.encode(clip, trained_model, tmp_path / "plain.lcv", refine_steps=0)
    refined = latentcast.encode(clip, trained_model, tmp_path / "refined.lcv", refine_steps=20)
    with Container(plain.path) as a, Container(refined.path) as b:
        # The ranges (side information) are the encoder's: refinement changes only codes.
        assert a.header.to_bytes() == b.header.to_bytes()
        decoders = model_decoders(trained_model)
        plain_frames = np.concatenate(list(decode_movie(a, decoders)))
        refined_frames = np.concatenate(list(decode_movie(b, decoders)))
    reference = np.stack(list(video.read_frames(str(clip), None)))
    gain_db = 10 * np.log10(_mse(plain_frames, reference).mean() / _mse(refined_frames, reference).mean())
    assert gain_db > 0.05, gain_db
    assert refined.streaming_bytes < 1.5 * plain.streaming_bytes


def test_a_batch_across_a_scene_boundary_is_refined_with_each_scenes_decoder(parted_model, two_scene_clip):
    cfg = load_config(parted_model)
    frames = np.stack(list(video.read_frames(str(two_scene_clip), None)))
    parts = model_parts(parted_model, cfg.decoder_sha256, len(frames))
    decoder_at = torch_decoder_at(parted_model, cfg, parts)
    first, second = decoder_at(0), decoder_at(24)
    assert first is not second and decoder_at(24) is second
    latents = latents_of([frames], load_encoder(parted_model))
    quant = Quantizer.fit(latents, 3)
    span = slice(20, 28)
    joint = refine_span(torch_decoder_at(parted_model, cfg, parts), parts, 20, frames[span], latents[span], quant, 10)
    apart = np.concatenate([refine_latents(d, frames[a:b], latents[a:b], quant, 10)
                            for d, (a, b) in ((first, (20, 24)), (second, (24, 28)))])
    np.testing.assert_allclose(joint, apart, atol=1e-6)
    # With the first scene's decoder across the cut, the second scene's frames refine otherwise.
    wrong = refine_latents(first, frames[24:28], latents[24:28], quant, 10)
    assert not np.allclose(wrong, apart[4:], atol=1e-6)


@pytest.mark.parametrize("steps", ["-1", "1001"])
def test_refine_steps_out_of_range_is_a_one_line_error(trained_model, clip, tmp_path, capsys, steps):
    from latentcast.commands import encode

    code = encode.main([str(clip), "--model", str(trained_model), "-o", str(tmp_path / "x.lcv"),
                        "--refine-steps", steps, "-q"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "--refine-steps" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.lcv").exists()


def test_ingest_refines_by_default(trained_model, clip, tmp_path):
    from latentcast.server.store import Store

    store = Store(tmp_path / "s", create=True)
    default = store.ingest(str(clip), trained_model, title="d", progress=False)
    plain = store.ingest(str(clip), trained_model, title="p", progress=False, refine_steps=0)
    with Container(store.movie_path(default.id)) as a, Container(store.movie_path(plain.id)) as b:
        assert a.header.to_bytes() == b.header.to_bytes()
        assert [a.read_payload(i) for i in range(len(a.chunks))] != [b.read_payload(i) for i in range(len(b.chunks))]
    plain_file = latentcast.encode(clip, trained_model, tmp_path / "p.lcv", refine_steps=0)
    with Container(plain_file.path) as c, Container(store.movie_path(plain.id)) as b:
        assert [c.read_payload(i) for i in range(len(c.chunks))] == [b.read_payload(i) for i in range(len(b.chunks))]


def test_a_constant_dimension_keeps_its_one_value(trained_model, clip_frames):
    decoder = load_decoder(trained_model)
    for p in decoder.parameters():
        p.requires_grad_(False)
    latents = latents_of([clip_frames], load_encoder(trained_model)).copy()
    # Dimensions the movie never moves, each at one value off to a side of its usual ones, so
    # the decoder pulls it back one way or the other. Both values are exact in float16, as the
    # header stores ranges, so each range is that one value.
    latents[:, 5], latents[:, 6] = -8.0, 8.0
    assert latents[:, 5].max() < np.delete(latents, [5, 6], axis=1).min() < 8.0
    quant = Quantizer.fit(latents, 3)
    # Enough steps, large enough, to carry any code across a rounding boundary.
    from latentcast.codec.nn import refine

    old, refine.STEP_SIZE = refine.STEP_SIZE, 0.2
    try:
        refined = refine_latents(decoder, clip_frames, latents, quant, steps=10)
    finally:
        refine.STEP_SIZE = old
    assert (quant.quantize(refined)[:, 5:7] == 0).all()
    np.testing.assert_allclose(refined[:, 5:7], np.broadcast_to(quant.lo[5:7], (len(refined), 2)))
    assert (quant.quantize(refined) != quant.quantize(latents)).any()  # the others did move

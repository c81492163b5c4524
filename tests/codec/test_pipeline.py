import threading

import numpy as np
import pytest
import torch

from latentcast.codec.format.container import Container
from latentcast.codec.format.errors import ModelError
from latentcast.codec.format.quantizer import Quantizer
from latentcast.codec.format.rates import seconds_to_frame
from latentcast.codec.nn.config import load_config
from latentcast.codec.nn.encode import encode_video
from latentcast.codec.nn.tensors import to_tensor, to_uint8
from latentcast.codec.nn.weights import load_decoder, load_encoder
from latentcast.codec.runtime.decode import decode_latents, decode_movie
from latentcast.codec.runtime.scene_decoders import model_decoders
from latentcast.codec.video import read_frames


def test_container_decode_is_bit_exact_with_in_memory_quantized_decode(trained_model, clip, tmp_path):
    enc, dec = load_encoder(trained_model), load_decoder(trained_model)
    cfg = load_config(trained_model)
    res = encode_video(str(clip), enc, cfg.decoder_sha256, tmp_path / "m.lcv", bits=5, chunk_seconds=0.5,
                       progress=False)
    assert res.frames == 24
    # in memory: encode all frames, quantize with the same ranges, decode
    frames = np.stack(list(read_frames(clip)))
    with torch.no_grad():
        z = enc(to_tensor(frames)).numpy()
    quant = Quantizer.fit(z, 5)
    deq = torch.from_numpy(quant.dequantize(quant.quantize(z)))
    expect = np.concatenate([to_uint8(dec(deq[i : i + 1])) for i in range(len(deq))])
    with Container(res.path) as c:
        assert c.header.chunk_frames == 6 and len(c.chunks) == 4
        decoders = model_decoders(trained_model, runtime="torch")
        got = np.concatenate(list(decode_movie(c, decoders, batch=7)))
        assert np.array_equal(got, expect)
        part = np.concatenate(list(decode_movie(c, decoders, start=5, count=10)))
        assert np.array_equal(part, expect[5:15])


def test_more_bits_never_fewer_bytes(trained_model, clip, tmp_path):
    enc = load_encoder(trained_model)
    sizes = [encode_video(str(clip), enc, "", tmp_path / f"{b}.lcv", bits=b, progress=False).streaming_bytes
             for b in (2, 4, 6, 8)]
    assert sizes == sorted(sizes)


def test_decoder_must_match_movie(trained_model, clip, tmp_path):
    encode_video(str(clip), load_encoder(trained_model), "f" * 64, tmp_path / "m.lcv", progress=False)
    with Container(tmp_path / "m.lcv") as c, pytest.raises(ModelError, match="needs decoder"):
        next(decode_movie(c, model_decoders(trained_model)))


@pytest.mark.parametrize("text,frame", [("90", 1800), ("1:30", 1800), ("00:01:30", 1800), ("0.5", 10)])
def test_seconds_to_frame(text, frame):
    assert seconds_to_frame(text, 20) == frame


def test_decodes_from_many_threads_all_run_on_one(trained_model):
    # One OpenMP team per process: every caller's frames come from the same decode thread, and
    # each caller still gets exactly its own frames.
    built = model_decoders(trained_model).decoder_at(0)
    ran_on = set()

    def decoder(z):
        ran_on.add(threading.get_ident())
        return built(z)

    latents = np.random.default_rng(0).normal(size=(4, 5, built.cfg.latent_dim)).astype(np.float32)
    expected = [np.concatenate(list(decode_latents(decoder, x, 2))) for x in latents]
    got = [None] * len(latents)

    def play(i):
        got[i] = np.concatenate(list(decode_latents(decoder, latents[i], 2)))

    callers = [threading.Thread(target=play, args=(i,)) for i in range(len(latents))]
    [t.start() for t in callers]
    [t.join() for t in callers]
    assert len(ran_on) == 1 and threading.get_ident() not in ran_on
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))

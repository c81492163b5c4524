"""The runtimes a viewer decodes with: the ONNX graph against the torch decoder, and the choice."""

import numpy as np
import onnx
import pytest
import torch
from safetensors.numpy import load as np_load

import latentcast
from latentcast.codec.format.decoder_file import tensor_layout
from latentcast.codec.format.decoder_state import dequantize_state
from latentcast.codec.format.errors import ModelError, UsageError
from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.nn.model import build_model
from latentcast.codec.nn.weights import int8_state_bytes, shipped_widths
from latentcast.codec.quality import PSNRMeter
from latentcast.codec.runtime.backends import (
    AUTO_MAX_LOSS_DB,
    BF16_MIN_PIXELS,
    bf16_native,
    build_decoder,
    resolve_runtime,
)
from latentcast.codec.runtime.onnx_graph import EXTERNAL_FILE, decoder_graph
from latentcast.codec.video import read_frames


def _psnr(frames, reference):
    meter = PSNRMeter()
    meter.update(reference, frames)
    return meter.psnr


def test_onnx_decodes_a_movie_as_torch_does(trained_model, clip, tmp_path):
    movie = tmp_path / "m.lcv"
    latentcast.encode(clip, trained_model, movie)
    onnx = np.stack(list(latentcast.decode(movie, trained_model, runtime="onnx")))
    torch_frames = np.stack(list(latentcast.decode(movie, trained_model, runtime="torch")))
    assert np.abs(onnx.astype(int) - torch_frames.astype(int)).max() <= 1
    source = np.stack(list(read_frames(clip)))
    assert abs(_psnr(onnx, source) - _psnr(torch_frames, source)) <= 0.01


@pytest.mark.parametrize("size,head", [((96, 64), "shuffle"), ((75, 41), "shuffle"), ((64, 48), "conv"),
                                       ((96, 64), "dwshuffle"), ((75, 41), "dwshuffle")])
def test_the_graph_matches_the_torch_decoder_at_odd_sizes_and_every_head(size, head):
    torch.manual_seed(0)
    cfg = _conv_head_config(size) if head == "conv" else CodecConfig.plan(*size, 64, head=head)
    decoder = build_model(cfg).decoder.eval()
    state = np_load(int8_state_bytes(decoder, shipped_widths(decoder)))
    z = np.random.default_rng(1).normal(size=(6, 64)).astype(np.float32)
    a = build_decoder(state, cfg, "onnx")(z)
    b = build_decoder(state, cfg, "torch")(z)
    assert a.shape == b.shape == (6, size[1], size[0], 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert (a != b).mean() < 1e-3  # a level apart only where a value sits on a rounding edge


def _conv_head_config(size):
    plan = CodecConfig.plan(*size, 64)
    return CodecConfig(**{**plan.__dict__, "head": "conv", "decoder_channels": (*plan.decoder_channels, 16)})


def test_weights_that_do_not_fit_the_config_are_refused_before_a_graph_is_built():
    cfg = CodecConfig.plan(64, 48, 64)
    decoder = build_model(cfg).decoder
    weights = dequantize_state(np_load(int8_state_bytes(decoder)))
    graph = onnx.load_model_from_string(decoder_graph(cfg, weights))
    onnx.checker.check_model(graph, full_check=True)  # onnx's own checker and shape inference take it
    assert [o.name for o in graph.graph.output] == ["frames"]
    with pytest.raises(ModelError, match="do not fit"):
        decoder_graph(cfg, {**weights, "stem.weight": weights["stem.weight"][:1]})
    with pytest.raises(ModelError, match="do not fit"):
        decoder_graph(cfg, {k: v for k, v in weights.items() if k != "stem.bias"})


def external_session(graph, data: bytes):
    """An ONNX Runtime session of a weightless graph, its decoder file given from memory (as the page does)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_external_initializers_from_files_in_memory([EXTERNAL_FILE], [data], [len(data)])
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("head", ["shuffle", "dwshuffle"])
def test_the_weightless_graph_reads_the_decoder_file_and_decodes_the_same_frames(head, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(2)
    cfg = CodecConfig.plan(96, 64, 64, head=head)
    decoder = build_model(cfg).decoder.eval()
    data = int8_state_bytes(decoder, shipped_widths(decoder))
    state = np_load(data)
    plain, weightless = decoder_graph(cfg, state), decoder_graph(cfg, state, external=tensor_layout(data))
    # no weight is in the graph: it is a small fraction of the file it reads
    assert len(weightless) < 0.05 * len(data) < len(plain)
    (tmp_path / EXTERNAL_FILE).write_bytes(data)
    (tmp_path / "graph.onnx").write_bytes(weightless)
    onnx.checker.check_model(str(tmp_path / "graph.onnx"))  # onnx's checker, its external data beside it
    z = np.random.default_rng(3).normal(size=(3, 64)).astype(np.float32)
    sessions = [ort.InferenceSession(plain, providers=["CPUExecutionProvider"]),
                external_session(weightless, data)]
    frames = [s.run(None, {"latents": z})[0] for s in sessions]
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).max() <= 1
    # the weights really come from the file: other bytes there give other frames
    other = bytearray(data)
    span = tensor_layout(data)["stem.weight"]
    other[span.offset : span.offset + span.length] = bytes(span.length)
    assert not np.array_equal(external_session(weightless, bytes(other)).run(None, {"latents": z})[0], frames[1])


def test_runtime_choice():
    assert resolve_runtime("auto") == "onnx"  # both installed here: auto takes ONNX Runtime
    assert resolve_runtime("torch") == "torch"
    with pytest.raises(UsageError, match="unknown runtime"):
        resolve_runtime("tensorflow")


def test_the_bf16_runtime_runs_in_bf16_and_stays_near_fp32():
    torch.manual_seed(4)
    cfg = CodecConfig.plan(96, 64, 64)
    decoder = build_model(cfg).decoder.eval()
    state = np_load(int8_state_bytes(decoder, shipped_widths(decoder)))
    z = np.random.default_rng(5).normal(size=(4, 64)).astype(np.float32)
    fp32, bf16 = build_decoder(state, cfg, "torch"), build_decoder(state, cfg, "torch-bf16")
    assert (fp32.runtime, bf16.runtime) == ("torch", "torch-bf16")
    a, b = fp32(z), bf16(z)
    assert b.shape == a.shape and b.dtype == np.uint8
    assert (a != b).any()  # bf16's rounding shows: the arithmetic really is bf16
    assert _psnr(b, a) > 40


def _config_with_bf16_loss(size, loss):
    cfg = CodecConfig.plan(*size, 64)
    if loss is not None:
        cfg.trained = {"bf16_loss_db": loss}
    return cfg


def test_auto_takes_bf16_only_for_large_frames_within_the_measured_loss():
    large = (960, 540)
    assert large[0] * large[1] >= BF16_MIN_PIXELS
    native = "torch-bf16" if bf16_native() else "onnx"  # emulated bf16 is slower than fp32: never auto
    assert resolve_runtime("auto", _config_with_bf16_loss(large, AUTO_MAX_LOSS_DB / 2)) == native
    assert resolve_runtime("auto", _config_with_bf16_loss(large, AUTO_MAX_LOSS_DB)) == native
    assert resolve_runtime("auto", _config_with_bf16_loss(large, 2 * AUTO_MAX_LOSS_DB)) == "onnx"
    assert resolve_runtime("auto", _config_with_bf16_loss(large, None)) == "onnx"  # trained before it measured
    assert resolve_runtime("auto", _config_with_bf16_loss(large, True)) == "onnx"
    assert resolve_runtime("auto", _config_with_bf16_loss((320, 180), 0.0)) == "onnx"  # too small for AMX to pay
    assert resolve_runtime("torch-bf16") == "torch-bf16"

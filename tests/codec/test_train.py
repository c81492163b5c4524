import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import load_file as st_load_file
from torch.optim.swa_utils import AveragedModel

from latentcast.codec.format.decoder_file import compress_decoder, sha256_file
from latentcast.codec.format.errors import ModelError, UsageError
from latentcast.codec.nn.config import CodecConfig, load_config, top_code
from latentcast.codec.nn.model import build_model
from latentcast.codec.nn.tensors import to_tensor, to_uint8
from latentcast.codec.nn.weights import load_decoder, load_model
from latentcast.codec.quality import PSNRMeter
from latentcast.codec.train import distributed as distributed_module
from latentcast.codec.train import options as options_module
from latentcast.codec.train import phases as phases_module
from latentcast.codec.train.checkpoint import load_checkpoint as _load_checkpoint
from latentcast.codec.train.checkpoint import save_checkpoint as _save_checkpoint
from latentcast.codec.train.device import pick_autocast
from latentcast.codec.train.loop import epochs_of_batches, start_run, train
from latentcast.codec.train.options import TrainOptions
from latentcast.codec.train.weight_budget import DEFAULT_WEIGHT_BUDGET
from synthetic import make_frames, write_clip


def _psnr(model, frames):
    meter = PSNRMeter()
    with torch.no_grad():
        meter.update(frames, to_uint8(model(to_tensor(frames))))
    return meter.psnr


def test_training_raises_psnr_by_a_margin(trained_model, clip_frames):
    cfg = load_config(trained_model)
    torch.manual_seed(0)
    untrained = build_model(CodecConfig.plan(cfg.width, cfg.height, cfg.latent_dim)).eval()
    before = _psnr(untrained, clip_frames)
    after = _psnr(load_model(trained_model), clip_frames)
    assert after > before + 6, (before, after)
    assert cfg.trained["psnr_float"] > before + 6


def test_model_dir_contents_and_checksums(trained_model):
    names = {p.name for p in trained_model.iterdir()}
    assert {"config.json", "encoder.safetensors", "decoder.safetensors", "train_log.jsonl"} <= names
    cfg = load_config(trained_model)
    assert cfg.decoder_sha256 == sha256_file(trained_model / "decoder.safetensors")
    assert cfg.encoder_sha256 == sha256_file(trained_model / "encoder.safetensors")
    assert cfg.architecture == "hnerv-lite"
    dec = load_decoder(trained_model)
    assert all(p.dtype == torch.float32 for p in dec.parameters())
    # the downloadable file holds int8 codes: about a byte a parameter
    n = sum(p.numel() for p in dec.parameters())
    assert (trained_model / "decoder.safetensors").stat().st_size < 1.1 * n + 4096
    lines = (trained_model / "train_log.jsonl").read_text().splitlines()
    assert "final" in json.loads(lines[-1])


def test_quantized_psnr_close_to_float(trained_model):
    t = load_config(trained_model).trained
    assert t["psnr_float"] - t["psnr_quantized"] < 0.3, t
    # what the torch-bf16 runtime would cost it, measured on its own frames (auto reads it)
    assert isinstance(t["bf16_loss_db"], float) and abs(t["bf16_loss_db"]) < 0.5, t
    assert t["seconds"] >= 0 and t["evaluation_seconds"] >= 0, t  # training and measuring, apart
    # what a budget in seconds bought depends on what ran it: the summary names it
    from latentcast.codec.train.device import pick_autocast

    assert re.fullmatch(r".+, \d+ threads?", t["hardware"]), t
    assert t["precision"] == ("bf16" if pick_autocast("auto", torch.device("cpu")) else "fp32"), t


def test_tampered_weights_are_refused(trained_model, tmp_path):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(trained_model, copy)
    raw = bytearray((copy / "decoder.safetensors").read_bytes())
    raw[-5] ^= 1
    (copy / "decoder.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_decoder(copy)


def test_resume_continues_from_checkpoint(clip, tmp_path):
    out = tmp_path / "r"
    opts = TrainOptions(minutes=None, epochs=2, batch_size=4, latent_dim=32, progress=False, checkpoint_seconds=0)
    first = train(str(clip), out, opts)
    opts.epochs = 4
    second = train(str(clip), out, opts, resume=True)
    assert first["steps"] == 12 and second["steps"] == 24  # 24 frames / batch 4 = 6 steps an epoch


def test_a_long_run_on_a_long_video_takes_4_frames_a_step_and_a_resume_keeps_its_batch(tmp_path, monkeypatch):
    # thresholds a test can reach in seconds (the real ones: 1,000 frames and 20 minutes)
    frames = 64
    monkeypatch.setattr(options_module, "AUTO_BATCH_FRAMES", frames)
    monkeypatch.setattr(options_module, "AUTO_BATCH_MIN_BUDGET_S", 3.0)
    opts = TrainOptions(minutes=0.06)
    assert opts.batch_for(frames, 3.0) == 4
    assert opts.batch_for(frames - 1, 3.0) == 2  # too few frames
    assert opts.batch_for(frames, 2.9) == 2  # too short a budget
    assert opts.batch_for(frames, None) == 2  # a budget in epochs
    assert TrainOptions(batch_size=3).batch_for(10**6, 10**6) == 3

    long = write_clip(tmp_path / "long.mkv", make_frames(frames, 32, 24))
    timed = TrainOptions(minutes=0.06, latent_dim=32, progress=False)
    run = start_run(str(long), tmp_path / "m", timed, resume=False)
    assert run.batch_size == 4 and len(next(epochs_of_batches(run))) == 4

    # a checkpoint records the batch, and one from before the default depended on the run (so
    # made at 2) resumes at 2
    run.checkpoint()
    run.data.close()

    def resumed_batch() -> int:
        again = start_run(str(long), tmp_path / "m", timed, resume=True)
        again.data.close()
        return again.batch_size

    assert resumed_batch() == 4
    state_file = tmp_path / "m" / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    del state["batch_size"]
    state_file.write_text(json.dumps(state))
    assert resumed_batch() == 2
    assert train(str(long), tmp_path / "t", timed)["batch_size"] == 4  # what the summary reports


class _RecordingAverage(AveragedModel):
    """The trainer's weight average, noting the decoder weights it is given at every step."""

    seen: list = []
    interrupt_at: int | None = None

    def update_parameters(self, model):
        if len(self.seen) == self.interrupt_at:
            raise KeyboardInterrupt  # as Ctrl-C would, in the middle of the QAT phase
        self.seen.append({k: v.detach().clone() for k, v in model.named_parameters()})
        super().update_parameters(model)


@pytest.fixture
def recording_average(monkeypatch):
    monkeypatch.setattr(_RecordingAverage, "seen", [])
    monkeypatch.setattr(_RecordingAverage, "interrupt_at", None)
    monkeypatch.setattr(phases_module, "AveragedModel", _RecordingAverage)
    return _RecordingAverage


def test_qat_phase_freezes_the_encoder_and_ships_the_decoder_averaged_over_it(clip, tmp_path, monkeypatch,
                                                                              recording_average):
    at_qat_start = {}
    measure_ranges = distributed_module.latent_ranges

    def ranges(model, *args, **kwargs):  # last called when the QAT phase begins (before: to size the noise)
        at_qat_start["encoder"] = {k: v.clone() for k, v in model.encoder.state_dict().items()}
        return measure_ranges(model, *args, **kwargs)

    monkeypatch.setattr(distributed_module, "latent_ranges", ranges)
    out = tmp_path / "m"
    summary = train(str(clip), out, TrainOptions(minutes=None, epochs=4, batch_size=4, latent_dim=32,
                                                 qat_fraction=0.5, progress=False))
    seen = recording_average.seen
    assert summary["averaged_steps"] == len(seen) == 12  # 24 steps, the second half in the QAT phase

    encoder = load_model(out).encoder.state_dict()
    for name, value in at_qat_start["encoder"].items():
        assert torch.equal(encoder[name], value), name
    final = st_load_file(str(out / "checkpoint" / "state.safetensors"))
    for name in seen[0]:
        mean = torch.stack([s[name] for s in seen]).mean(0)
        kept = final[f"model.decoder.{name}"]
        torch.testing.assert_close(kept, mean, rtol=0, atol=1e-6)
        assert not torch.equal(kept, seen[-1][name])  # not the last step's weights
        assert not torch.equal(seen[0][name], seen[-1][name])  # the decoder did train in the phase



@pytest.mark.parametrize("noise_from, noisy_steps", [(0.5, 6), (1.0, 0)])
def test_latents_train_through_quantization_noise_from_the_fraction_given(clip, tmp_path, monkeypatch, noise_from,
                                                                          noisy_steps):
    calls = []
    add_noise = phases_module.add_quantization_noise

    def recording(latents, lo, hi, bits):
        calls.append((latents.requires_grad, bits))
        return add_noise(latents, lo, hi, bits)

    monkeypatch.setattr(phases_module, "add_quantization_noise", recording)
    train(str(clip), tmp_path / "m", TrainOptions(minutes=None, epochs=4, batch_size=4, latent_dim=32, bits=3,
                                                  qat_fraction=0.25, noise_from=noise_from, progress=False))
    # 24 steps: 12-17 are past half the budget and before the last quarter's QAT phase, and the
    # encoder learns through them (its latents carry a gradient), at the bit width asked for.
    assert calls == [(True, 3)] * noisy_steps


def test_noise_fraction_out_of_range_is_refused(clip, tmp_path):
    with pytest.raises(UsageError, match="--noise-from"):
        train(str(clip), tmp_path / "m", TrainOptions(minutes=None, epochs=1, noise_from=1.5, progress=False))

def test_a_resumed_qat_phase_keeps_its_weight_average(clip, tmp_path, recording_average):
    out = tmp_path / "r"
    opts = TrainOptions(minutes=None, epochs=4, batch_size=4, latent_dim=32, qat_fraction=0.5, progress=False)
    recording_average.interrupt_at = 5
    with pytest.raises(KeyboardInterrupt):
        train(str(clip), out, opts)
    state = st_load_file(str(out / "checkpoint" / "state.safetensors"))
    assert state["average.n_averaged"].item() == 5
    recording_average.interrupt_at = None
    summary = train(str(clip), out, opts, resume=True)
    assert summary["averaged_steps"] == len(recording_average.seen) > 5


def test_resume_without_checkpoint_is_a_clear_error(clip, tmp_path):
    with pytest.raises(ModelError, match="nothing to resume"):
        train(str(clip), tmp_path / "x", TrainOptions(minutes=None, epochs=1, progress=False), resume=True)


def test_ms_ssim_loss_trains(clip, tmp_path):
    s = train(str(clip), tmp_path / "s", TrainOptions(minutes=None, epochs=3, batch_size=4, latent_dim=32,
                                                       ms_ssim_weight=0.5, progress=False))
    assert np.isfinite(s["psnr_float"])


def test_a_conv_head_model_trains_on_whole_frames(clip, clip_frames, tmp_path):
    # The first models' full-resolution head cannot train in blocks; it keeps the frame loss.
    s = train(str(clip), tmp_path / "c", TrainOptions(minutes=None, epochs=4, latent_dim=32, progress=False,
                                                       arch={"head": "conv", "decoder_channels": (32, 24, 16, 16, 8)}))
    cfg = load_config(tmp_path / "c")
    assert cfg.head == "conv"
    torch.manual_seed(0)
    untrained = build_model(cfg).eval()
    assert s["psnr_float"] > _psnr(untrained, clip_frames) + 3


def test_shipped_decoder_fits_the_weight_budget_with_the_widths_it_records(trained_model):
    cfg = load_config(trained_model)
    assert cfg.head == "shuffle"
    data = (trained_model / "decoder.safetensors").read_bytes()
    state = st_load(data)
    n = sum(v.numel() for k, v in state.items() if not k.endswith(".qscale"))
    assert len(compress_decoder(data)) <= DEFAULT_WEIGHT_BUDGET * n / 8
    assert cfg.trained["decoder_bytes_sent"] == len(compress_decoder(data))
    widths = cfg.weight_layer_bits
    assert widths and set(widths) == {k for k, v in state.items() if v.dtype == torch.int8}
    assert len(set(widths.values())) > 1
    for name, bits in widths.items():
        assert int(state[name].abs().max()) == top_code(bits), name
    # a resumed run fine-tunes at the widths it chose, not at freshly measured ones
    assert json.loads((trained_model / "checkpoint" / "state.json").read_text())["weight_layer_bits"] == widths


def test_one_weight_width_for_all_layers_on_request(clip, tmp_path):
    s = train(str(clip), tmp_path / "w5", TrainOptions(minutes=None, epochs=1, batch_size=4, latent_dim=32,
                                                       weight_bits=5, progress=False))
    cfg = load_config(tmp_path / "w5")
    assert cfg.weight_bits == 5 and cfg.weight_layer_bits == {} and set(s["weight_widths"].values()) == {5}
    codes = [v for v in st_load((tmp_path / "w5" / "decoder.safetensors").read_bytes()).values()
             if v.dtype == torch.int8]
    assert max(int(v.abs().max()) for v in codes) == top_code(5)


def test_frame_cache_reads_the_clip_back_and_names_a_truncated_file(clip, clip_frames, tmp_path):
    from latentcast.codec.train.data import build_cache

    cache, meta = build_cache(str(clip), None, tmp_path / "cache", None, progress=False)
    assert meta["frames"] == len(clip_frames) == len(cache)
    assert np.array_equal(cache.stack([0, 5, len(cache) - 1]), clip_frames[[0, 5, len(cache) - 1]])
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) - 10])
    with pytest.raises(ModelError, match="truncated"):
        cache.read(len(cache) - 1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_both_precisions_train_and_ship_fp32_weights(clip, clip_frames, tmp_path, precision):
    out = tmp_path / precision
    s = train(str(clip), out, TrainOptions(minutes=None, epochs=6, batch_size=4, latent_dim=32, lr=3e-3,
                                           precision=precision, progress=False))
    torch.manual_seed(0)
    untrained = build_model(CodecConfig.plan(*clip_frames.shape[2:0:-1], 32)).eval()
    assert s["psnr_float"] > _psnr(untrained, clip_frames) + 3
    enc = st_load((out / "encoder.safetensors").read_bytes())
    assert all(v.dtype == torch.float32 for v in enc.values())
    assert s["options"]["precision"] == precision


def test_pick_autocast():
    assert pick_autocast("fp32", torch.device("cpu")) is None
    assert pick_autocast("bf16", torch.device("cpu")) is torch.bfloat16
    assert pick_autocast("auto", torch.device("cpu")) in (None, torch.bfloat16)
    with pytest.raises(UsageError, match="--precision"):
        pick_autocast("fp8", torch.device("cpu"))


def test_checkpoint_restores_moments_in_the_parameters_layout(tmp_path):
    cfg = CodecConfig.plan(64, 48, 32)
    model = build_model(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.rand(2, 3, 48, 64).contiguous(memory_format=torch.channels_last)
    ((model(x) - x) ** 2).mean().backward()
    opt.step()
    _save_checkpoint(tmp_path, model, opt, {"step": 1})

    fresh = build_model(cfg).to(memory_format=torch.channels_last)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3, fused=True)
    _load_checkpoint(tmp_path, fresh, fresh_opt)
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)
        for name in ("exp_avg", "exp_avg_sq"):
            restored = fresh_opt.state[q][name]
            assert torch.equal(restored, opt.state[p][name]) and restored.stride() == q.stride()
    ((fresh(x) - x) ** 2).mean().backward()
    fresh_opt.step()  # the fused step accepts the restored state

"""The training schedule as declared: phase order, where each starts, and what entering does."""

import pytest

from latentcast.codec.train import TrainOptions, train
from latentcast.codec.train import phases as phases_module
from latentcast.codec.train.phases import PHASES, phase_at


def test_phases_come_in_order_and_start_where_the_options_say():
    opts = TrainOptions(noise_from=0.2, qat_fraction=0.3, weight_qat_from=1)
    assert [p.name for p in PHASES] == ["float", "noise", "weights", "qat"]
    assert [p.start(opts) for p in PHASES] == [0.0, 0.2, 1.0, pytest.approx(0.7)]
    assert [phase_at(x, opts).name for x in (0.0, 0.19, 0.2, 0.69, 0.7, 0.99)] == \
        ["float", "float", "noise", "noise", "qat", "qat"]  # at 1 the weight codes wait for QAT
    # only the last phase freezes the encoder; every phase but the first changes the latents
    assert [p.freeze_encoder for p in PHASES] == [False, False, False, True]
    assert [p.latents is None for p in PHASES] == [True, False, False, False]


def test_weight_codes_can_start_before_the_qat_phase_but_never_before_the_noise():
    opts = TrainOptions(noise_from=0.2, qat_fraction=0.3, weight_qat_from=0.5)
    assert [phase_at(x, opts).name for x in (0.3, 0.49, 0.5, 0.69, 0.7)] == \
        ["noise", "noise", "weights", "weights", "qat"]
    early = TrainOptions(noise_from=0.2, qat_fraction=0.3, weight_qat_from=0.05)
    assert [phase_at(x, early).name for x in (0.1, 0.2, 0.7)] == ["float", "weights", "qat"]


def test_a_noise_start_past_the_qat_start_skips_the_noise():
    opts = TrainOptions(noise_from=0.9, qat_fraction=0.2)
    assert {phase_at(x / 100, opts).name for x in range(100)} == {"float", "qat"}


def test_entry_actions_run_once_each_in_the_declared_order(clip, tmp_path, monkeypatch):
    calls = []

    def recording(action):
        def run(r):
            calls.append((action.__name__, r.step))
            action(r)
        run.__name__ = action.__name__
        return run

    wrapped = tuple(phases_module.Phase(p.name, p.start, p.latents, p.freeze_encoder,
                                        tuple(recording(a) for a in p.on_entry), p.before_step) for p in PHASES)
    monkeypatch.setattr(phases_module, "PHASES", wrapped)
    monkeypatch.setattr("latentcast.codec.train.loop.phase_at",
                        lambda progress, opts: phases_module.phase_at(progress, opts, wrapped))
    summary = train(str(clip), tmp_path / "m", TrainOptions(minutes=None, epochs=10, batch_size=4, latent_dim=32,
                                                            noise_from=0.2, qat_fraction=0.5, weight_qat_from=0.3,
                                                            progress=False))
    # 60 steps: noise from step 12, weight codes from step 18, QAT from step 30
    assert calls == [("restart_collapse_guard", 12),
                     ("restart_collapse_guard", 18), ("choose_weight_widths", 18), ("fake_quantize_weights", 18),
                     ("restart_collapse_guard", 30), ("choose_weight_widths", 30), ("fake_quantize_weights", 30),
                     ("measure_final_ranges", 30), ("start_weight_average", 30)]
    assert summary["averaged_steps"] == 30
    log = (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()
    assert '"phase": "weights"' in log[0] and '"phase": "qat"' in log[-2]  # logged every 25 steps


def test_a_budget_per_second_of_video_scales_with_its_length(clip, tmp_path, monkeypatch):
    from latentcast.codec.format.errors import UsageError
    from latentcast.codec.train import loop

    seen = {}

    def spend_nothing(run, resume):
        seen["budget_s"], seen["progress"] = run.budget_s, run.progress()

    monkeypatch.setattr(loop, "run_budget", spend_nothing)
    train(str(clip), tmp_path / "m", TrainOptions(minutes=None, seconds_per_second=30, latent_dim=32,
                                                  progress=False))
    assert seen["budget_s"] == 60  # 24 frames at 12 fps: 2 s of video
    assert 0 <= seen["progress"] < 0.5
    with pytest.raises(UsageError, match="exactly one of"):
        TrainOptions(seconds_per_second=30).validate()  # with the default minutes too


def test_range_measures_read_as_many_pixels_at_every_frame_size():
    from latentcast.codec.train.phases import MIN_RANGE_FRAMES, range_frames

    assert range_frames(256, 320, 180) == 256  # the size the counts were set at: unchanged
    assert range_frames(2000, 1280, 720) == 125  # 16 times the pixels a frame: a sixteenth of the frames
    assert range_frames(256, 1920, 1080) == MIN_RANGE_FRAMES  # never so few that one frame decides a range
    assert range_frames(256, 64, 48) == 256  # smaller frames read no more than before

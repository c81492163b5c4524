"""The collapse guard: a run whose PSNR falls off a cliff goes back to its last healthy weights."""

import math

import torch

from latentcast.codec.train import loop as train_module
from latentcast.codec.train.collapse_guard import CollapseGuard
from latentcast.codec.train.loop import train
from latentcast.codec.train.options import TrainOptions


def _guard():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt, CollapseGuard(model, opt, drop_db=4.0, patience=20, every=10, smoothing=0.9)


def test_a_collapse_restores_the_last_healthy_weights_and_halves_the_rate():
    model, opt, guard = _guard()
    for step in range(1, 31):
        assert not guard.suspicious(25.0)
        guard.maybe_snapshot(step, guard.healthy)
    healthy = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(100.0)  # what a blow-up does to the weights
    hits = [guard.suspicious(12.0) for _ in range(60)]
    assert not any(hits[:20]) and hits[-1]  # it waits out its patience first
    assert not guard.healthy
    assert guard.restore(60)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in healthy.items())
    assert guard.lr_scale == 0.5 and guard.restores == 1
    assert guard.healthy and not guard.suspicious(25.0)


def test_one_bad_batch_is_not_a_collapse():
    _model, _opt, guard = _guard()
    for _ in range(50):
        guard.suspicious(25.0)
    assert not guard.suspicious(5.0)
    assert not any(guard.suspicious(25.0) for _ in range(50))


def test_no_snapshot_taken_while_collapsed_and_none_to_restore_at_first():
    model, _opt, guard = _guard()
    assert not guard.restore(0)
    for step in range(1, 21):
        guard.suspicious(25.0)
    for _ in range(40):
        guard.suspicious(10.0)
    with torch.no_grad():
        model.weight.fill_(7.0)
    guard.maybe_snapshot(40, guard.healthy)  # step 40 is due, but training is not healthy
    assert not guard.restore(40)


def test_a_collapse_is_told_as_it_begins_and_one_bad_batch_is_not():
    # A phase that begins mid-collapse asks this before it starts the guard over.
    _model, _opt, guard = _guard()
    for _ in range(30):
        guard.suspicious(25.0)
    assert not guard.collapsing()
    guard.suspicious(10.0)
    assert not guard.collapsing()
    hits = [guard.suspicious(12.0) for _ in range(6)]
    assert guard.collapsing() and not any(hits)  # well before the patience runs out
    guard.rebase()
    assert not guard.collapsing()


def test_no_snapshot_of_weights_already_falling_while_the_smoothed_psnr_lags():
    model = torch.nn.Linear(3, 2)
    guard = CollapseGuard(model, torch.optim.Adam(model.parameters()), patience=20, every=10, smoothing=0.99)
    for step in range(1, 31):
        guard.suspicious(25.0)
        guard.maybe_snapshot(step, guard.healthy)
    healthy = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(5):
        guard.suspicious(12.0)  # the smoothed PSNR has fallen by well under 1 dB
    with torch.no_grad():
        model.weight.add_(100.0)
    assert not guard.healthy
    guard.maybe_snapshot(40, guard.healthy)
    assert guard.restore(40)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in healthy.items())


def test_a_new_objective_is_not_a_collapse():
    # Quantization-aware training starts lower on purpose: after rebase() that is the new normal,
    # and the float weights from before are no longer a state to go back to.
    _model, _opt, guard = _guard()
    for step in range(1, 31):
        guard.suspicious(30.0)
        guard.maybe_snapshot(step, guard.healthy)
    guard.rebase()
    assert not any(guard.suspicious(22.0) for _ in range(60))
    assert guard.healthy and not guard.restore(90)


def test_training_loop_rebases_the_guard_when_noise_and_quantized_training_begin(clip, tmp_path, monkeypatch):
    seen = []

    class Recording(CollapseGuard):
        def suspicious(self, psnr):
            seen.append("step")
            return super().suspicious(psnr)

        def rebase(self):
            seen.append("rebase")
            super().rebase()

    monkeypatch.setattr(train_module, "CollapseGuard", Recording)
    train(str(clip), tmp_path / "q", TrainOptions(minutes=None, epochs=10, batch_size=4, latent_dim=32,
                                                   qat_fraction=0.5, noise_from=0.2, progress=False))
    # 60 steps: the latents train through noise from step 12, and quantized from step 30
    steps_before = [seen[:i].count("step") for i, what in enumerate(seen) if what == "rebase"]
    assert steps_before == [12, 30] and seen.count("step") == 60


def test_training_loop_restores_and_records_it(clip, tmp_path, monkeypatch):
    # Report a collapse once, mid-run: the loop must put the snapshot back, train on at half
    # the rate, and say so in the summary and the checkpoint. The weights phase is kept out
    # (weight_qat_from=1): its start, at step 18, would rebase the guard just before step 20.
    class OneCollapse(CollapseGuard):
        def __init__(self, model, opt, lr_scale):
            super().__init__(model, opt, every=5, lr_scale=lr_scale)
            self.calls = 0

        def suspicious(self, psnr):
            super().suspicious(psnr)
            self.calls += 1
            return self.calls == 20

    monkeypatch.setattr(train_module, "CollapseGuard", OneCollapse)
    out = tmp_path / "g"
    opts = TrainOptions(minutes=None, epochs=6, batch_size=4, latent_dim=32, progress=False, weight_qat_from=1)
    s = train(str(clip), out, opts)
    assert s["collapse_restores"] == 1 and s["lr_scale"] == 0.5 and math.isfinite(s["psnr_float"])
    # a resumed run keeps the lowered rate
    monkeypatch.undo()
    opts.epochs = 8
    resumed = train(str(clip), out, opts, resume=True)
    assert resumed["lr_scale"] == 0.5 and resumed["collapse_restores"] == 0


def test_a_collapse_under_way_when_a_phase_begins_is_restored_not_taken_for_the_new_normal(clip, tmp_path,
                                                                                           monkeypatch):
    # The PSNR falls at step 8, four steps before the noise phase begins (step 12) and long before
    # the guard's patience runs out. Starting the guard over at step 12 without asking would
    # make the collapsed state its baseline, and the run would never be restored.
    class CollapsesBeforeNoise(CollapseGuard):
        def __init__(self, model, opt, lr_scale):
            super().__init__(model, opt, every=5, lr_scale=lr_scale)
            self.calls = 0

        def suspicious(self, psnr):
            self.calls += 1
            return super().suspicious(12.0 if 8 <= self.calls <= 12 else 25.0)

    monkeypatch.setattr(train_module, "CollapseGuard", CollapsesBeforeNoise)
    s = train(str(clip), tmp_path / "n", TrainOptions(minutes=None, epochs=10, batch_size=4, latent_dim=32,
                                                       noise_from=0.2, weight_qat_from=1, progress=False))
    assert s["collapse_restores"] == 1 and s["lr_scale"] == 0.5 and math.isfinite(s["psnr_float"])

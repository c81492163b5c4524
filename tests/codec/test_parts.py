"""Base plus per-scene parts: bit-exact round trips, what a part refuses, fitting and resuming."""

import json

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import latentcast
from latentcast.codec.format.container import Container
from latentcast.codec.format.decoder_file import sha256_bytes
from latentcast.codec.format.decoder_state import BASE_KEY, DELTA, apply_part, load_state_verified
from latentcast.codec.format.errors import ModelError, UsageError
from latentcast.codec.nn.config import DECODER, load_config
from latentcast.codec.nn.part_index import PART_INDEX, load_part_index, model_parts, part_path, read_part
from latentcast.codec.nn.parts import make_part
from latentcast.codec.runtime.backends import build_decoder
from latentcast.codec.runtime.decode import decode_latents, decode_movie
from latentcast.codec.runtime.scene_decoders import SceneDecoders, model_decoders
from latentcast.codec.train.scene_parts import DONE_DIR, PartOptions, fit_parts


def _base(model_dir):
    data = (model_dir / DECODER).read_bytes()
    return data, st_load(data), load_config(model_dir)


def _changed(state):
    w = next(k for k, v in state.items() if v.dtype == np.int8)
    b = next(k for k, v in state.items() if v.dtype == np.float16)
    return w, b


def _retuned(state):
    """The base with some codes, a scale row and a bias changed, as a fitted scene might."""
    out = dict(state)
    w = next(k for k, v in state.items() if v.dtype == np.int8)
    codes = state[w].copy()
    codes.reshape(-1)[::7] = np.clip(codes.reshape(-1)[::7].astype(np.int16) + 3, -31, 31).astype(np.int8)
    out[w] = codes
    out[w + ".qscale"] = state[w + ".qscale"] * np.float32(1.25)
    b = next(k for k, v in state.items() if v.dtype == np.float16)
    out[b] = state[b] + np.float16(0.5)
    return out


def test_a_part_rebuilds_the_scene_decoder_bit_for_bit(trained_model):
    data, state, cfg = _base(trained_model)
    scene = _retuned(state)
    part = make_part(state, scene, cfg.decoder_sha256)
    w, b = _changed(state)
    rebuilt = apply_part(state, part, sha256_bytes(part), cfg.decoder_sha256)
    assert set(rebuilt) == set(scene) and all(np.array_equal(rebuilt[k], scene[k]) for k in scene)
    z = np.random.default_rng(0).normal(size=(3, cfg.latent_dim)).astype(np.float32)
    got = np.concatenate(list(decode_latents(build_decoder(rebuilt, cfg), z)))
    want = np.concatenate(list(decode_latents(build_decoder(scene, cfg), z)))
    assert np.array_equal(got, want)
    base = build_decoder(load_state_verified(data, cfg.decoder_sha256, "base"), cfg)
    assert not np.array_equal(got, np.concatenate(list(decode_latents(base, z))))
    # Only what changed travels: one weight's deltas, its scales and one bias; of the base, nothing.
    assert sorted(st_load(part)) == sorted([w + DELTA, w + ".qscale", b])
    assert st_load(make_part(state, state, cfg.decoder_sha256)) == {}


def test_a_part_refuses_the_wrong_bytes_base_or_range(trained_model):
    _data, state, cfg = _base(trained_model)
    part = make_part(state, _retuned(state), cfg.decoder_sha256)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        apply_part(state, part, "0" * 64, cfg.decoder_sha256)
    with pytest.raises(ModelError, match="another base"):
        apply_part(state, part, sha256_bytes(part), "f" * 64)
    w = next(k for k, v in state.items() if v.dtype == np.int8)
    top = {**state, w: np.full_like(state[w], 31)}
    push = st_save({w + DELTA: np.full_like(state[w], 100)}, metadata={BASE_KEY: cfg.decoder_sha256})
    with pytest.raises(ModelError, match="int8 range"):
        apply_part(top, push, sha256_bytes(push), cfg.decoder_sha256)
    stray = st_save({"nope": np.zeros(1, np.float32)}, metadata={BASE_KEY: cfg.decoder_sha256})
    with pytest.raises(ModelError, match="no tensor"):
        apply_part(state, stray, sha256_bytes(stray), cfg.decoder_sha256)
    with pytest.raises(ValueError, match="int8 holds"):
        make_part({**state, w: np.full_like(state[w], -127)}, {**state, w: np.full_like(state[w], 127)},
                  cfg.decoder_sha256)


def test_fitting_gives_each_scene_its_part(parted_model):
    cfg = load_config(parted_model)
    index = load_part_index(parted_model, cfg.decoder_sha256)
    assert [(p.start, p.end) for p in index.parts] == [(0, 24), (24, 48)]
    assert index.frames == 48
    for p in index.parts:
        assert sha256_bytes(read_part(parted_model, p.sha256)) == p.sha256
        assert 0 < p.bytes_sent < (parted_model / DECODER).stat().st_size / 4
    # A part is fit to lower its scene's error, and is never kept where it would raise it.
    assert all(p.psnr_part >= p.psnr_base for p in index.parts)
    assert sum(p.psnr_part - p.psnr_base for p in index.parts) > 0.1


def test_a_parted_movie_decodes_each_scene_with_its_part(parted_model, two_scene_clip, tmp_path):
    out = tmp_path / "m.lcv"
    latentcast.encode(two_scene_clip, parted_model, out, chunk_seconds=1.5)  # chunks of 18: one straddles the cut
    cfg = load_config(parted_model)
    index = load_part_index(parted_model, cfg.decoder_sha256)
    with Container(out) as c:
        assert c.header.parts == tuple((p.start, p.sha256) for p in index.parts)
        latents = np.concatenate([z for _, z in c.iter_latents()])
    frames = np.stack(list(latentcast.decode(out, parted_model)))
    base_state = st_load((parted_model / DECODER).read_bytes())
    for p in index.parts:
        data = read_part(parted_model, p.sha256)
        scene = build_decoder(apply_part(base_state, data, p.sha256, cfg.decoder_sha256), cfg)
        want = np.concatenate(list(decode_latents(scene, latents[p.start : p.end])))
        assert np.array_equal(frames[p.start : p.end], want)
    # A seek into the second scene fetches its part alone; a plain decoder is refused for this movie.
    with Container(out) as c:
        decoders = model_decoders(parted_model, c.header.parts)
        tail = np.concatenate(list(decode_movie(c, decoders, start=30, count=10)))
        assert decoders.fetched == [index.parts[1].sha256] and np.array_equal(tail, frames[30:40])
        with pytest.raises(ModelError, match="parts"):
            next(decode_movie(c, model_decoders(parted_model)))
    plain = tmp_path / "plain.lcv"
    latentcast.encode(two_scene_clip, parted_model, plain, parts=False)
    with Container(plain) as c:
        assert c.header.parts == ()


def test_prefetch_fetches_the_next_part_before_its_scene(parted_model):
    cfg = load_config(parted_model)
    index = load_part_index(parted_model, cfg.decoder_sha256)
    parts = tuple((p.start, p.sha256) for p in index.parts)
    asked = []

    def fetch(sha):
        asked.append(sha)
        return read_part(parted_model, sha)

    decoders = SceneDecoders((parted_model / DECODER).read_bytes(), cfg, parts, fetch)
    decoders.decoder_at(0)
    decoders.prefetch(24)  # what decode_frames does at the end of a scene's span
    decoders._pending[1].result(timeout=30)
    assert asked == [parts[0][1], parts[1][1]]
    decoders.decoder_at(30)
    assert asked == [parts[0][1], parts[1][1]]  # built from the prefetched bytes, not fetched again
    assert decoders.spans(20, 10) == [(0, 4), (4, 6)]
    decoders.close()


def test_a_part_for_another_video_or_base_is_refused(parted_model, tmp_path):
    cfg = load_config(parted_model)
    with pytest.raises(UsageError, match="--no-parts"):  # a video longer than the one the parts were fit to
        model_parts(parted_model, cfg.decoder_sha256, 49)
    assert len(model_parts(parted_model, cfg.decoder_sha256, 20)) == 1  # a cut of it keeps the parts it reaches
    with pytest.raises(ModelError, match="another base"):
        load_part_index(parted_model, "0" * 64)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    raw = json.loads((parted_model / PART_INDEX).read_text())
    raw["parts"][0]["end"] += 1
    (damaged / PART_INDEX).write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="checksum"):
        load_part_index(damaged, cfg.decoder_sha256)


def test_fitting_resumes_at_the_scene_without_a_part(parted_model, two_scene_clip, tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(parted_model, model)
    cfg = load_config(model)
    before = load_part_index(model, cfg.decoder_sha256)
    first, second = before.parts
    # As if the run was cut short after the first scene: the second's record and part are gone.
    (model / "parts" / DONE_DIR / f"{second.start}.json").unlink()
    part_path(model, second.sha256).unlink()
    (model / PART_INDEX).unlink()
    kept = part_path(model, first.sha256).stat().st_mtime_ns
    after = fit_parts(str(two_scene_clip), model, PartOptions(epochs=30, sensitivity=4,
                                                                rd_slope=0, progress=False))
    assert after.parts[0] == first  # not fit again
    assert part_path(model, first.sha256).stat().st_mtime_ns == kept
    assert after.parts[1].start == second.start and part_path(model, after.parts[1].sha256).exists()
    # Other options are another fit: nothing of the last one is taken for it.
    with pytest.raises(UsageError, match="no layer"):
        fit_parts(str(two_scene_clip), model, PartOptions(layers=("nope",), progress=False))


def test_a_part_is_sent_only_where_it_is_worth_its_bytes(parted_model, two_scene_clip, tmp_path):
    import shutil

    from latentcast.codec.train.scene_parts import worth_sending

    # 0.5 dB for bytes that double the scene is worth it at 0.4 dB a doubling, not at 6.
    assert worth_sending(0.5, 1000, 1000, 0.4) and not worth_sending(0.5, 1000, 1000, 6.0)
    assert not worth_sending(0.0, 10, 1000, 0.0) and worth_sending(0.01, 10, 1000, 0.0)
    model = tmp_path / "m"
    shutil.copytree(parted_model, model)
    cfg = load_config(model)
    fitted = load_part_index(model, cfg.decoder_sha256)
    stamps = {p.sha256: part_path(model, p.sha256).stat().st_mtime_ns for p in fitted.parts}
    strict = fit_parts(str(two_scene_clip), model, PartOptions(epochs=30, sensitivity=4,
                                                                 rd_slope=1000, progress=False))
    # Re-decided from the kept fits, nothing refit: every scene now ships with the base alone.
    assert {p.sha256: part_path(model, p.sha256).stat().st_mtime_ns for p in fitted.parts} == stamps
    assert all(p.sha256 == cfg.decoder_sha256 and p.bytes_sent == 0 and p.psnr_part == p.psnr_base
               for p in strict.parts)
    assert [p.psnr_fit for p in strict.parts] == [p.psnr_fit for p in fitted.parts]
    assert strict.header_parts(48) == ()
    latentcast.encode(two_scene_clip, model, tmp_path / "m.lcv")
    with Container(tmp_path / "m.lcv") as c:
        assert c.header.parts == ()
    # One scene with the base, one with its part: the base's scene needs no fetch.
    mixed = ((0, cfg.decoder_sha256), (24, fitted.parts[1].sha256))
    decoders = model_decoders(model, mixed)
    decoders.decoder_at(3)
    decoders.decoder_at(30)
    assert decoders.fetched == [fitted.parts[1].sha256]
    decoders.close()


def test_the_delta_penalty_leaves_more_codes_where_the_base_has_them(parted_model, two_scene_clip, tmp_path):
    import shutil

    def changed_codes(penalty):
        model = tmp_path / f"p{penalty}"
        shutil.copytree(parted_model, model, ignore=shutil.ignore_patterns("parts", "parts.json"))
        index = fit_parts(str(two_scene_clip), model, PartOptions(
            epochs=30, sensitivity=4, rd_slope=0, layers=("affine", "head"), delta_penalty=penalty,
            progress=False))
        part = index.parts[1]
        assert part.sha256 != index.base_sha256  # a part was fit and kept, so its deltas are what it holds
        deltas = st_load(read_part(model, part.sha256))
        return sum(int((v != 0).sum()) for k, v in deltas.items() if k.endswith(DELTA))

    free, pulled = changed_codes(0.0), changed_codes(1.0)
    assert pulled < free / 2, (pulled, free)

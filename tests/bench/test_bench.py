"""The benchmark on the tiny synthetic clip: every output is written, and learned bitrates are
the containers' real byte counts."""

import json

import pytest

from latentcast.codec.format.container import Container
from latentcast.commands import bench


@pytest.fixture(scope="module")
def results(trained_model, clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "r"
    assert bench.main([str(clip), "--model", str(trained_model), "--bits", "2,4,8", "--codecs", "x264,av1",
                       "-o", str(out), "-q"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_outputs_written(results, capsys):
    out, res = results
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + len(res["points"])
    assert res["frames"] == 24 and res["width"] == 64 and res["clip"] == "shapes.mkv"
    codecs = {(p["codec"], p["preset"]) for p in res["points"]}
    assert {("latentcast", None), ("libx264", "medium"), ("libx264", "veryslow"), ("libsvtav1", "8")} <= codecs
    for p in res["points"]:
        for key in ("kbps", "bpp", "psnr", "psnr_mse", "y_psnr", "enc_fps", "dec_fps"):
            assert p[key] > 0, (key, p)
        assert p["ms_ssim"] is None and "too small" in p["ms_ssim_note"]  # 64x48 is below 5 scales
        if p["codec"] != "latentcast":
            assert p["settings"]["crf"] == str(p["crf"]) and p["settings"]["pix_fmt"] == "yuv420p"
    assert res["bd"], "a BD row per (classical, learned) pair"


def test_learned_bitrate_is_the_real_byte_count(results, trained_model):
    out, res = results
    seconds = res["frames"] / res["fps"]
    decoder_z = None
    for p in res["points"]:
        if p["codec"] != "latentcast":
            continue
        with Container(out / p["container"]) as c:
            parts = c.breakdown()
        # streaming counts the side information (the header, ranges and all) beside the chunks
        streaming = parts["header"] + parts["chunk_records"] + parts["chunk_payloads"]
        expect = streaming if p["accounting"] == "streaming" else streaming + p["decoder_bytes"]
        assert p["bytes"] == expect
        assert p["kbps"] == pytest.approx(expect * 8 / seconds / 1000)
        if p["accounting"] == "total":
            decoder_z = p["decoder_bytes"]
    assert 0 < decoder_z < (trained_model / "decoder.safetensors").stat().st_size


def test_more_bits_more_bytes_and_no_less_quality(results):
    _, res = results
    pts = sorted((p for p in res["points"] if p["codec"] == "latentcast" and p["accounting"] == "streaming"),
                 key=lambda p: p["bits"])
    assert [p["bits"] for p in pts] == [2, 4, 8]
    assert pts[0]["bytes"] < pts[1]["bytes"] < pts[2]["bytes"]
    assert pts[0]["psnr"] < pts[2]["psnr"]


def test_plot_overlay(results, tmp_path):
    out, _ = results
    png = tmp_path / "overlay.png"
    assert bench.main(["--plot", str(out), str(out), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv,why", [
    (["--model", "/nonexistent/model"], "model directory not found"),
    (["--codecs", "x264,mpeg2"], "unknown codec 'mpeg2'"),
    (["--size", "320x180"], "trained at 64x48"),
])
def test_bad_input_is_one_line(trained_model, clip, tmp_path, capsys, argv, why):
    if "--model" not in argv:
        argv = argv + ["--model", str(trained_model)]
    code = bench.main([str(clip), *argv, "-o", str(tmp_path / "r"), "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and why in err


def test_bench_names_the_plot_extra_when_matplotlib_is_missing(trained_model, clip, tmp_path, capsys,
                                                                monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code = bench.main([str(clip), "--model", str(trained_model), "-o", str(tmp_path / "r"), "--codecs", "", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "pip install 'latentcast[plot]'" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # refused before any work


def test_the_sound_is_priced_apart_from_the_curves(results, tmp_path):
    from fractions import Fraction

    from latentcast.codec.eval.bench import sound_kbps
    from latentcast.codec.eval.report import markdown
    from synthetic import flash_and_click, write_clip_with_sound

    _out, res = results
    assert res["audio_kbps"] is None and "sound: none" in markdown(res)  # the synthetic clip is silent
    frames, pcm = flash_and_click(48, 12, 30)
    loud = write_clip_with_sound(tmp_path / "loud.mkv", frames, 12, pcm)
    rate = sound_kbps(str(loud), 48, Fraction(12))
    assert 20 < rate < 80  # 48 asked, coded in chunks
    assert sound_kbps(str(loud), 48, Fraction(12), 24) < rate
    assert "sound: " in markdown({**res, "audio_kbps": rate}) and "picture with picture" in markdown(
        {**res, "audio_kbps": rate})


def test_a_worst_scene_is_its_spans_mean_psnr_against_the_whole():
    import numpy as np

    from latentcast.codec.quality import PSNRMeter

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    noisy = ref.astype(np.int16)
    noisy[:3] += 2  # the first scene off by 2 everywhere, the second by 8
    noisy[3:] += 8
    meter = PSNRMeter()
    meter.update(ref, np.clip(noisy, 0, 255).astype(np.uint8))
    first, second = meter.span_psnr([(0, 3), (3, 6)])
    assert first > second + 10  # four times the error: 12 dB apart
    assert meter.worst_span_db([(0, 3), (3, 6)]) == pytest.approx(second - meter.psnr) and second < meter.psnr
    assert meter.worst_span_db([(0, 6)]) is None  # one scene has nothing to be starved against


def test_bench_judges_every_codec_over_the_models_scene_parts(parted_model, two_scene_clip, tmp_path):
    from latentcast.codec.eval.report import markdown

    out = tmp_path / "r"
    assert bench.main([str(two_scene_clip), "--model", str(parted_model), "--bits", "3", "--codecs", "x264",
                       "-o", str(out), "-q"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["scenes"] == [[0, 24], [24, 48]]  # the two parts' scenes
    assert {p["codec"] for p in res["points"]} == {"latentcast", "libx264"}
    for p in res["points"]:
        assert p["worst_scene_db"] <= 0, p  # the worst of two scenes is at or under their mean
    assert "2 scenes" in markdown(res)
    assert "worst_scene_db" in (out / "results.csv").read_text().splitlines()[0]


def test_a_one_scene_clip_has_no_worst_scene(results):
    _out, res = results
    assert len(res["scenes"]) == 1 and all(p["worst_scene_db"] is None for p in res["points"])


def test_bench_refines_the_codes_as_encode_does(results, trained_model, clip, tmp_path):
    _, refined = results  # the default --refine-steps
    out = tmp_path / "plain"
    assert bench.main([str(clip), "--model", str(trained_model), "--bits", "2,4,8", "--codecs", "", "--refine-steps",
                       "0", "-o", str(out), "-q"]) == 0
    plain = json.loads((out / "results.json").read_text())

    def learned(res):
        return {p["bits"]: p for p in res["points"] if p["codec"] == "latentcast" and p["accounting"] == "streaming"}

    for bits, p in learned(refined).items():
        q = learned(plain)[bits]
        assert p["refine_steps"] > 0 and q["refine_steps"] == 0
        assert p["psnr"] > q["psnr"], bits
    from latentcast.codec.eval.report import markdown
    from latentcast.codec.format.quantizer import DEFAULT_REFINE_STEPS

    assert f"refined by {DEFAULT_REFINE_STEPS} steps" in markdown(refined) and "not refined" in markdown(plain)

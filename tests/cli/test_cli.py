"""The subcommands through main(argv), their error lines, and the installed script."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from latentcast import cli
from latentcast.codec import video
from latentcast.codec.format.quantizer import DEFAULT_BITS
from latentcast.commands import decode, encode, info, train
from synthetic import make_frames, write_clip


def _one_line_error(capsys, code):
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def movie(trained_model, clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "m.lcv"
    assert encode.main([str(clip), "--model", str(trained_model), "-o", str(out), "-q"]) == 0
    return out


def test_encode_info_decode(movie, trained_model, clip, tmp_path, capsys):
    capsys.readouterr()
    assert info.main([str(movie), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["frames"] == 24 and d["bits"] == DEFAULT_BITS and d["bytes"]["total"] == movie.stat().st_size
    assert d["symbols_packed"]
    out = tmp_path / "d.mkv"
    assert decode.main([str(movie), "--model", str(trained_model), "-o", str(out), "--reference", str(clip),
                        "-q"]) == 0
    err = capsys.readouterr().err
    assert "PSNR" in err
    # playback's rate is reported apart from the first frame, which waits for the decoder's build
    assert re.search(r"decoded 24 frames .*; first frame after \d+ ms, then [\d.]+ frames/s", err), err
    frames = list(video.read_frames(out))
    assert len(frames) == 24 and frames[0].shape == (48, 64, 3)


def test_decode_to_stdout_is_matroska_or_y4m(movie, trained_model, capfdbinary):
    import io

    import av

    assert decode.main([str(movie), "--model", str(trained_model), "-o", "-", "--frames", "2", "-q"]) == 0
    data = capfdbinary.readouterr().out
    assert data.startswith(b"\x1a\x45\xdf\xa3")  # Matroska's EBML magic: picture and sound in a pipe
    with av.open(io.BytesIO(data)) as piped:
        assert len([f for f in piped.decode(video=0)]) == 2
    assert decode.main([str(movie), "--model", str(trained_model), "-o", "-", "--format", "y4m", "--frames", "2",
                        "-q"]) == 0
    data = capfdbinary.readouterr().out
    assert data.startswith(b"YUV4MPEG2 W64 H48 F12:1")
    assert data.count(b"FRAME\n") == 2


def test_missing_file(trained_model, tmp_path, capsys):
    code = encode.main([str(tmp_path / "nope.mp4"), "--model", str(trained_model), "-o", str(tmp_path / "x.lcv")])
    assert "no such file" in _one_line_error(capsys, code)
    assert not (tmp_path / "x.lcv").exists()


def test_not_a_video(trained_model, tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    code = train.main([str(junk), "-o", str(tmp_path / "m"), "--epochs", "1", "-q"])
    assert "not a video" in _one_line_error(capsys, code)


def test_zero_frames(trained_model, tmp_path, capsys):
    empty = write_clip(tmp_path / "empty.y4m", np.zeros((0, 48, 64, 3), np.uint8))
    code = encode.main([str(empty), "--model", str(trained_model), "-o", str(tmp_path / "x.lcv")])
    assert "no frames" in _one_line_error(capsys, code)
    assert not (tmp_path / "x.lcv").exists()


def test_tampered_model(trained_model, movie, clip, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(trained_model, bad)
    raw = bytearray((bad / "encoder.safetensors").read_bytes())
    raw[-1] ^= 1
    (bad / "encoder.safetensors").write_bytes(bytes(raw))
    code = encode.main([str(clip), "--model", str(bad), "-o", str(tmp_path / "x.lcv")])
    assert "sha256 mismatch" in _one_line_error(capsys, code)


def test_decoder_not_matching_movie(movie, clip, tmp_path, capsys):
    other = tmp_path / "other"
    assert train.main([str(clip), "-o", str(other), "--epochs", "1", "--latent-dim", "64", "--seed", "5", "-q"]) == 0
    capsys.readouterr()
    code = decode.main([str(movie), "--model", str(other), "-o", str(tmp_path / "d.mkv")])
    assert "needs decoder" in _one_line_error(capsys, code)
    assert not (tmp_path / "d.mkv").exists()


def test_size_the_model_cannot_take(trained_model, clip, tmp_path, capsys):
    code = encode.main([str(clip), "--model", str(trained_model), "--size", "100x100", "-o", str(tmp_path / "x.lcv")])
    assert "trained at 64x48" in _one_line_error(capsys, code)
    code = train.main([str(clip), "-o", str(tmp_path / "m"), "--size", "3x3", "--epochs", "1"])
    assert "out of range" in _one_line_error(capsys, code)


def test_bad_weight_budget_or_width(clip, tmp_path, capsys):
    code = train.main([str(clip), "-o", str(tmp_path / "m"), "--weight-budget", "0.2", "--epochs", "1"])
    assert "weight-budget" in _one_line_error(capsys, code)
    code = train.main([str(clip), "-o", str(tmp_path / "m"), "--weight-bits", "9", "--epochs", "1"])
    assert "weight-bits" in _one_line_error(capsys, code)
    assert not (tmp_path / "m").exists()
    # one or the other: a usage error
    assert train.main([str(clip), "-o", str(tmp_path / "m"), "--weight-bits", "6", "--weight-budget", "5"]) == 2


def test_latent_dim_zero(clip, tmp_path, capsys):
    code = train.main([str(clip), "-o", str(tmp_path / "m"), "--latent-dim", "0", "--epochs", "1"])
    assert "latent-dim" in _one_line_error(capsys, code)


def test_corrupt_container(movie, tmp_path, capsys):
    raw = bytearray(movie.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    bad = tmp_path / "bad.lcv"
    bad.write_bytes(bytes(raw))
    line = _one_line_error(capsys, info.main([str(bad)]))
    assert "at byte" in line


def test_usage_errors_exit_2(capsys):
    assert cli.main(["nosuchcommand"]) == 2
    assert encode.main([]) == 2
    assert cli.main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def test_installed_script_runs(movie):
    exe = shutil.which("latentcast") or str((__import__("pathlib").Path(sys.executable).parent / "latentcast"))
    res = subprocess.run([exe, "info", str(movie)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "latent_dim" in res.stdout
    res = subprocess.run([exe, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--minutes" in res.stdout


def test_encode_and_ingest_default_to_the_bits_the_model_was_trained_for(clip, tmp_path, capsys):
    from latentcast.commands import ingest
    from latentcast.server.store import Store

    model = tmp_path / "m4"
    assert train.main([str(clip), "-o", str(model), "--epochs", "1", "--latent-dim", "32", "--bits", "4", "-q"]) == 0
    out = tmp_path / "m.lcv"
    assert encode.main([str(clip), "--model", str(model), "-o", str(out), "-q"]) == 0
    assert encode.main([str(clip), "--model", str(model), "-o", str(tmp_path / "m7.lcv"), "--bits", "7", "-q"]) == 0
    capsys.readouterr()
    for path, bits in ((out, 4), (tmp_path / "m7.lcv", 7)):
        assert info.main([str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["bits"] == bits
    assert ingest.main([str(clip), "--model", str(model), "--store", str(tmp_path / "s"), "-q"]) == 0
    (rec,) = Store(tmp_path / "s").list()
    assert rec.bits == 4


def test_train_flags_and_their_defaults_come_from_train_options():
    import dataclasses

    from latentcast.codec.train.options import TrainOptions
    from latentcast.commands._common import dataclass_options

    p = train.build_parser()
    actions = {a.dest: a for a in p._actions}
    for f in dataclasses.fields(TrainOptions):
        if not f.metadata["cli"]:
            assert f.name not in actions
            continue
        assert f.metadata["help"] in actions[f.name].help.replace("%%", "%"), f.name
        if f.default is not None:
            assert f"(default {f.default:g})" in actions[f.name].help if isinstance(f.default, float) else \
                f"(default {f.default})" in actions[f.name].help, f.name
    given = dataclass_options(TrainOptions, p.parse_args(["v.mp4", "-o", "m", "--epochs", "3", "--size", "64x48"]))
    assert given == {"epochs": 3, "minutes": None, "size": (64, 48)}
    assert dataclass_options(TrainOptions, p.parse_args(["v.mp4", "-o", "m"])) == {}


def test_a_preset_sets_its_rung_and_given_flags_still_win(capsys):
    from latentcast.codec.format.quantizer import DEFAULT_BITS
    from latentcast.codec.train.options import TrainOptions, with_cleared
    from latentcast.codec.train.presets import PRESETS
    from latentcast.commands._common import dataclass_options

    p = train.build_parser()
    given = dataclass_options(TrainOptions, p.parse_args(["v.mp4", "-o", "m", "--preset", "tiny"]))
    assert given == {"preset": "tiny", "capacity": "tiny", "latent_dim": 256, "bits": DEFAULT_BITS}
    given = dataclass_options(TrainOptions, p.parse_args(["v.mp4", "-o", "m", "--latent-dim", "128", "--bits", "2",
                                                          "--preset", "huge"]))
    assert (given["capacity"], given["latent_dim"], given["bits"]) == ("huge", 128, 2)
    for name, rung in PRESETS.items():  # the Python API takes the same name
        opts = TrainOptions(**with_cleared(TrainOptions, {"preset": name}))
        opts.validate()
        assert (opts.capacity, opts.latent_dim, opts.bits) == (rung.capacity, rung.latent_dim, rung.bits)
    assert train.main(["v.mp4", "-o", "m", "--preset", "enormous"]) == 2
    err = capsys.readouterr().err
    assert "enormous" in err and "huge" in err and len(err.strip().splitlines()) == 1


def test_training_without_torchvision_names_the_extra(clip, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else real(name, *a))
    line = _one_line_error(capsys, train.main([str(clip), "-o", str(tmp_path / "m"), "--epochs", "1", "-q"]))
    assert "pip install 'latentcast[train]'" in line


def test_parts_errors_are_one_line(trained_model, clip, parted_model, tmp_path, capsys):
    from latentcast.commands import parts

    assert "no layer 'nope'" in _one_line_error(capsys, parts.main([str(clip), "--model", str(trained_model),
                                                                    "--layers", "nope", "-q"]))
    assert "not found" in _one_line_error(capsys, parts.main([str(clip), "--model", str(tmp_path / "none")]))
    # The clip is 24 frames, the parts were fit to 48: encoding the longer video with them is refused.
    copy = tmp_path / "m"
    shutil.copytree(parted_model, copy)
    longer = write_clip(tmp_path / "longer.mkv", make_frames(60, 64, 48))
    code = encode.main([str(longer), "--model", str(copy), "-o", str(tmp_path / "x.lcv"), "-q"])
    assert "--no-parts" in _one_line_error(capsys, code)
    assert not (tmp_path / "x.lcv").exists()
    assert encode.main([str(longer), "--model", str(copy), "-o", str(tmp_path / "x.lcv"), "-q", "--no-parts"]) == 0
    capsys.readouterr()
    assert info.main([str(tmp_path / "x.lcv"), "--json", "--model", str(copy)]) == 0
    assert json.loads(capsys.readouterr().out)["decoder_parts"] == 0


def test_a_reader_that_closes_the_pipe_early_is_no_error(capsys):
    """`latentcast ... | head`: the reader has what it wanted; no error line and exit 0."""
    import os

    from latentcast.commands._common import command

    @command("talk")
    def talk(argv):
        for i in range(100_000):  # past any pipe's buffer
            print(f"line {i}")
        sys.stdout.flush()
        return 0

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    saved = os.dup(1)
    with capsys.disabled():
        os.dup2(write_end, 1)
        try:
            code = talk([])
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(write_end)
    assert code == 0
    assert "error" not in capsys.readouterr().err

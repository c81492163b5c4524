"""latentcast demo end to end on the synthetic clip, with a few seconds of training."""

import numpy as np

from latentcast.codec import video
from latentcast.commands import demo


def test_demo_runs_the_whole_scenario(clip, tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--video", str(clip), "--minutes", "0.05", "--out", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    for name in ("model/decoder.safetensors", "store/catalog.sqlite", "played.mkv", "side_by_side.mp4",
                 "frame_pair.png"):
        assert (out / name).exists(), name
    played = np.stack(list(video.read_frames(out / "played.mkv")))
    assert played.shape == (24, 48, 64, 3)
    pair = next(video.read_frames(out / "frame_pair.png"))
    assert pair.shape == (48, 2 * 64 + 4, 3)
    assert "PSNR" in err and "latentcast play" in err


def test_bundled_sample_is_packaged():
    info = video.probe(demo.sample_path())
    assert (info.width, info.height) == (320, 180) and info.frames == 280

from fractions import Fraction

import av
import numpy as np
import pytest

from latentcast.codec import video
from latentcast.codec.format.errors import UsageError, VideoError
from synthetic import make_frames, write_clip


def test_mkv_is_lossless_and_probe_reads_stream_facts(tmp_path, clip_frames):
    path = write_clip(tmp_path / "a.mkv", clip_frames, fps=12)
    back = np.stack(list(video.read_frames(path)))
    assert np.array_equal(back, clip_frames)
    info = video.probe(path)
    assert (info.width, info.height, info.fps) == (64, 48, Fraction(12))
    assert info.frames == len(clip_frames)
    assert abs(info.duration - len(clip_frames) / 12) < 0.2


def test_resize_and_max_frames(clip):
    frames = list(video.read_frames(clip, (32, 16), max_frames=5))
    assert len(frames) == 5
    assert frames[0].shape == (16, 32, 3) and frames[0].dtype == np.uint8


def test_mp4_is_h264_and_close_to_source(tmp_path, clip_frames):
    path = write_clip(tmp_path / "a.mp4", clip_frames)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    back = np.stack(list(video.read_frames(path)))
    assert back.shape == clip_frames.shape
    mse = np.mean((back.astype(float) - clip_frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28


def test_y4m_header_and_frame_sizes(tmp_path, clip_frames):
    path = write_clip(tmp_path / "a.y4m", clip_frames[:3])
    data = path.read_bytes()
    header, rest = data.split(b"\n", 1)
    assert header.startswith(b"YUV4MPEG2 W64 H48 F12:1")
    frame_bytes = 6 + 64 * 48 * 3 // 2
    assert len(rest) == 3 * frame_bytes
    # ffmpeg itself reads it back close to the source
    back = np.stack(list(video.read_frames(path)))
    assert np.abs(back.astype(int) - clip_frames[:3]).mean() < 3


def test_odd_sizes_write_444(tmp_path):
    frames = make_frames(2, 33, 17)
    path = write_clip(tmp_path / "odd.y4m", frames)
    assert b"C444" in path.read_bytes().split(b"\n", 1)[0]


def test_missing_file_and_not_a_video(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        video.probe(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError, match="not a video"):
        list(video.read_frames(junk))


def test_video_with_zero_frames(tmp_path):
    path = write_clip(tmp_path / "empty.y4m", np.zeros((0, 16, 16, 3), np.uint8))
    with pytest.raises(VideoError, match="no frames"):
        list(video.read_frames(path))


def test_failed_write_leaves_nothing(tmp_path, clip_frames):
    out = tmp_path / "out.mkv"
    with pytest.raises(RuntimeError):
        with video.open_writer(str(out), 64, 48, 12) as w:
            w.write(clip_frames[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["320", "0x10", "axb", "320x180x3", "4x4"])
def test_parse_size_rejects(text):
    with pytest.raises(UsageError):
        video.parse_size(text)


def test_parse_size_accepts():
    assert video.parse_size("320x180") == (320, 180)
    assert video.parse_size(None) is None

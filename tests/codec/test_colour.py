"""The output writer's colour: known RGB bars through each format, read back with its tags."""

import av
import numpy as np
import pytest

from latentcast.codec import video

BARS = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0],
                 [0, 0, 255], [0, 0, 0], [191, 64, 32], [16, 128, 235]], np.uint8)


def _bars(width, height):
    # Each bar 16-aligned and wide, so 4:2:0 chroma never straddles two bars inside the checked region.
    cols = np.repeat(np.arange(len(BARS)), -(-width // len(BARS)))[:width]
    return np.ascontiguousarray(np.broadcast_to(BARS[cols][None], (height, width, 3)))


@pytest.mark.parametrize("size,matrix,primaries", [((1280, 720), 1, 1), ((320, 240), 6, 6)])
@pytest.mark.parametrize("ext", ["mp4", "mkv", "y4m"])
def test_colour_bars_come_back_with_the_tags_applied(tmp_path, size, matrix, primaries, ext):
    w, h = size
    img = _bars(w, h)
    path = tmp_path / f"bars.{ext}"
    with video.open_writer(str(path), w, h, 25) as writer:
        for _ in range(2):
            writer.write(img)
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        frame = next(c.decode(video=0))
        back = frame.to_ndarray(format="rgb24")
    if ext == "mp4":  # BT.709 at HD, BT.601 below, limited range, for the matrix and the tags alike
        assert (ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range) == (matrix, primaries,
                                                                                        primaries, 1)
        assert (frame.colorspace, frame.color_range) == (matrix, 1)
    elif ext == "mkv":  # lossless RGB: no matrix, full range, the primaries tagged
        assert (ctx.colorspace, ctx.color_primaries, ctx.color_range) == (0, primaries, 2)
    else:  # y4m: limited range said in the header; the matrix FFmpeg assumes (BT.601)
        assert ctx.color_range == 1
    bar = -(-w // len(BARS))
    inner = np.concatenate([back[:, i * bar + 8 : (i + 1) * bar - 8] for i in range(len(BARS) - 1)], axis=1)
    want = np.concatenate([img[:, i * bar + 8 : (i + 1) * bar - 8] for i in range(len(BARS) - 1)], axis=1)
    assert np.abs(inner.astype(int) - want.astype(int)).max() <= (0 if ext == "mkv" else 3)


def test_mp4_puts_its_index_first(tmp_path):
    path = tmp_path / "fast.mp4"
    with video.open_writer(str(path), 64, 48, 25) as writer:
        for _ in range(5):
            writer.write(_bars(64, 48))
    raw = path.read_bytes()
    assert 0 < raw.find(b"moov") < raw.find(b"mdat")  # +faststart

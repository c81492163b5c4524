"""Reading and writing video through PyAV.

Frames are uint8 RGB arrays of shape (H, W, 3). Reading streams: nothing holds more than a
batch of frames, so a two-hour movie never sits in memory. Output format follows the name:

* ``.mkv`` -- FFV1 in RGB (bgr0), lossless, so a decoder's output can be measured exactly
* ``.mp4`` -- H.264 for viewing
* ``.y4m`` or ``-`` -- YUV4MPEG2 (to stdout for ``-``), for piping into a player
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .format.atomic import atomic_path
from .format.audio_info import RATE, AudioInfo
from .format.errors import UsageError, VideoError

log = logging.getLogger(__name__)

# 8192 x 8192: above 8K UHD. A header claiming more is refused before a frame is allocated.
MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class VideoInfo:
    """What the stream says about itself. ``frames`` may be an estimate for some containers."""

    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"320x180"`` -> (320, 180); None stays None."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"size must look like WIDTHxHEIGHT (e.g. 320x180), got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 8 or h < 8 or w > 16384 or h > 16384:
        raise UsageError(f"size {w}x{h} is out of range: each side must be 8..16384 pixels")
    return w, h


@contextlib.contextmanager
def _open_input(path: str | os.PathLike):
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a directory, not a video")
    try:
        container = av.open(str(p))
    except av.FFmpegError as e:
        raise VideoError(f"{p}: not a video ffmpeg can read ({e.__class__.__name__})") from None
    try:
        if not container.streams.video:
            raise VideoError(f"{p}: has no video stream")
        ctx = container.streams.video[0].codec_context
        if ctx.width * ctx.height > MAX_PIXELS:
            raise VideoError(f"{p}: frames of {ctx.width}x{ctx.height} are larger than this tool takes "
                             f"({MAX_PIXELS // 1_000_000} megapixels)")
        yield container
    finally:
        container.close()


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, fps, frame count and duration from the stream headers (no decoding)."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        fps = Fraction(fps)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        frames = stream.frames or int(round(duration * fps))
        if not duration and frames:
            duration = frames / float(fps)
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, fps, frames, duration)


def read_frames(
    path: str | os.PathLike, size: tuple[int, int] | None = None, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Yield uint8 RGB frames (H, W, 3), resized to ``size`` = (W, H) when given."""
    count = 0
    # One reformatter per reader (and writer) keeps its swscale context; VideoFrame.reformat
    # builds a new one for every frame, 3x slower at 320x180 for the same bytes.
    to_rgb = VideoReformatter()
    width, height = size if size is not None else (None, None)
    with _open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield to_rgb.reformat(frame, format="rgb24", width=width, height=height,
                                      interpolation="AREA" if size is not None else None).to_ndarray()
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.FFmpegError as e:
            if count == 0:
                raise VideoError(f"{path}: cannot decode video ({e})") from None
            # A damaged tail: keep what decoded, as players do, but say so.
            log.warning("%s: stopped after %d frames: %s", path, count, e)
    if count == 0:
        raise VideoError(f"{path}: the video has no frames")


def read_batches(
    path: str | os.PathLike, size: tuple[int, int] | None, batch: int, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Frames grouped into arrays of shape (<=batch, H, W, 3)."""
    buf: list[np.ndarray] = []
    for frame in read_frames(path, size, max_frames):
        buf.append(frame)
        if len(buf) == batch:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


@dataclass(frozen=True)
class Colour:
    """How a writer turns RGB into YUV and what it tags: one matrix for both, so players show
    the colours the frames hold. Values are FFmpeg's (AVCOL_*) and swscale's names."""

    name: str
    swscale: str  # the conversion matrix, av.video.reformatter.Colorspace
    matrix: int  # AVColorSpace: 1 BT.709, 6 SMPTE 170M (BT.601 525), 0 RGB
    primaries: int  # AVColorPrimaries: 1 BT.709, 6 SMPTE 170M
    transfer: int  # AVColorTransferCharacteristic: 1 BT.709, 6 SMPTE 170M


BT709 = Colour("bt709", "ITU709", 1, 1, 1)
BT601 = Colour("bt601", "ITU601", 6, 6, 6)
LIMITED, FULL = 1, 2  # AVColorRange: MPEG (16-235) and JPEG (0-255)


def colour_for(width: int, height: int) -> Colour:
    """BT.709 from 720 lines up (HD), BT.601 below, as players assume for untagged video."""
    return BT709 if height >= 720 or width >= 1280 else BT601


def _to_yuv(convert: VideoReformatter, rgb: np.ndarray, pix_fmt: str, colour: Colour) -> av.VideoFrame:
    """RGB to limited-range YUV with ``colour``'s matrix, the frame tagged with it."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return convert.reformat(frame, format=pix_fmt, src_colorspace=colour.swscale, dst_colorspace=colour.swscale,
                            src_color_range="JPEG", dst_color_range="MPEG", dst_color_trc=colour.transfer,
                            dst_color_primaries=colour.primaries)


def _y4m_fps(fps: Fraction) -> str:
    return f"{fps.numerator}:{fps.denominator}"


def yuv_format(width: int, height: int) -> str:
    """4:2:0 where both sides are even, which it needs; 4:4:4 otherwise."""
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


class Y4MWriter:
    """YUV4MPEG2 writer. 4:2:0 (what players expect) for even sizes, 4:4:4 otherwise."""

    def __init__(self, stream: BinaryIO, width: int, height: int, fps: Fraction):
        self.stream = stream
        self.width, self.height = width, height
        self.pix_fmt = yuv_format(width, height)
        chroma = "420jpeg" if self.pix_fmt == "yuv420p" else "444"
        self._to_yuv = VideoReformatter()
        # y4m has no matrix field, and FFmpeg (ffplay, `ffmpeg -i -`) reads an untagged one as BT.601
        # at every size: so BT.601 it is, where files that carry tags use colour_for's.
        self.colour = BT601
        stream.write(f"YUV4MPEG2 W{width} H{height} F{_y4m_fps(fps)} Ip A1:1 C{chroma} XCOLORRANGE=LIMITED\n".encode())

    def write(self, rgb: np.ndarray) -> None:
        frame = _to_yuv(self._to_yuv, rgb, self.pix_fmt, self.colour)
        parts = [b"FRAME\n"]
        for plane in frame.planes:
            arr = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            parts.append(arr.tobytes())
        self.stream.write(b"".join(parts))

    def write_audio(self, pcm: np.ndarray) -> None:
        """YUV4MPEG2 carries no sound."""

    def close(self) -> None:
        self.stream.flush()


# The sound as written beside the picture: FLAC keeps the decoded samples exactly in .mkv; .mp4
# gets AAC, which every player plays, at a rate well above the Opus it was decoded from.
AUDIO_CODECS = {"matroska": ("flac", None), "mp4": ("aac", 128_000)}


class _AVWriter:
    def __init__(self, path: Path | BinaryIO, fmt: str, codec: str, pix_fmt: str, width: int, height: int,
                 fps: Fraction, options: dict[str, str], chapters: list[dict] | None = None,
                 container_options: dict | None = None, audio: AudioInfo | None = None):
        target = path if hasattr(path, "write") else str(path)
        self.container = av.open(target, mode="w", format=fmt, options=container_options or {})
        self.stream = self.container.add_stream(codec, rate=fps)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = pix_fmt
        self.stream.options = options
        self.colour = colour_for(width, height)
        self.rgb = pix_fmt.startswith(("bgr", "rgb", "gbr"))
        ctx = self.stream.codec_context
        ctx.color_primaries, ctx.color_trc = self.colour.primaries, self.colour.transfer
        # RGB out (the lossless .mkv) has no matrix and keeps full range; YUV is limited range.
        ctx.colorspace, ctx.color_range = (0, FULL) if self.rgb else (self.colour.matrix, LIMITED)
        self.audio_stream = None
        self._samples = 0
        if audio is not None:
            name, rate = AUDIO_CODECS[fmt]
            # Decoded sound is always 48 kHz (codec.audio.decode_chunk), whatever rate it was coded at.
            self.audio_stream = self.container.add_stream(name, rate=RATE, layout=audio.layout)
            if rate:
                self.audio_stream.codec_context.bit_rate = rate
            self._layout = audio.layout
        if chapters:  # before the first packet: the header carries them
            self.container.set_chapters(chapters)
        self.pix_fmt = pix_fmt
        self._convert = VideoReformatter()

    def write_audio(self, pcm: np.ndarray) -> None:
        """Samples (channels, n) float32 at 48 kHz, in order; they play from the first frame's time."""
        if self.audio_stream is None or not pcm.shape[1]:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, np.float32), format="fltp", layout=self._layout)
        frame.sample_rate, frame.pts = self.audio_stream.codec_context.sample_rate, self._samples
        frame.time_base = Fraction(1, frame.sample_rate)
        self._samples += pcm.shape[1]
        for packet in self.audio_stream.encode(frame):
            self.container.mux(packet)

    def write(self, rgb: np.ndarray) -> None:
        if self.rgb:
            frame = self._convert.reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"),
                                           format=self.pix_fmt)
        else:
            frame = _to_yuv(self._convert, rgb, self.pix_fmt, self.colour)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        if self.audio_stream is not None:
            for packet in self.audio_stream.encode(None):
                self.container.mux(packet)
        self.container.close()


STDOUT_Y4M = "-.y4m"



def output_kind(path: str) -> str:
    """'mkv', 'mp4' or 'y4m' from an output name; ``-`` is Matroska on stdout (picture and sound),
    ``-.y4m`` YUV4MPEG2 on stdout (picture only)."""
    if path == "-":
        return "mkv"
    if path == STDOUT_Y4M:
        return "y4m"
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in ("mkv", "mp4", "y4m"):
        raise UsageError(f"output {path!r}: use a .mkv (lossless), .mp4 (H.264) or .y4m name, or - for stdout")
    return ext


@contextlib.contextmanager
def open_writer(path: str, width: int, height: int, fps: Fraction | float, chapters: list[dict] | None = None,
                audio: AudioInfo | None = None):
    """A frame writer for ``path``; files appear atomically, complete or not at all. ``chapters``
    (as codec.chapters.container_chapters gives them) go into .mkv and .mp4 files, and with
    ``audio`` the writer takes the sound too (``write_audio``); y4m has no sound and drops it."""
    kind = output_kind(path)
    fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if path == STDOUT_Y4M:
        writer = Y4MWriter(sys.stdout.buffer, width, height, fps)
        yield writer
        writer.close()
        return
    if path == "-":  # Matroska, live: raw YUV (no encoder to wait on) and the sound, into a pipe
        writer = _AVWriter(sys.stdout.buffer, "matroska", "rawvideo", yuv_format(width, height), width, height, fps,
                           {}, chapters, {"live": "1"}, audio)
        try:
            yield writer
        finally:
            writer.close()
        return
    with atomic_path(path, suffix="." + kind) as tmp:
        if kind == "y4m":
            with open(tmp, "wb") as f:
                writer = Y4MWriter(f, width, height, fps)
                yield writer
                writer.close()
            return
        if kind == "mkv":
            writer = _AVWriter(tmp, "matroska", "ffv1", "bgr0", width, height, fps, {"level": "3"}, chapters,
                               audio=audio)
        else:
            pix = yuv_format(width, height)
            # +faststart: the index goes before the media, so a browser or player starts before the end arrives
            writer = _AVWriter(tmp, "mp4", "libx264", pix, width, height, fps, {"crf": "18", "preset": "medium"},
                               chapters, {"movflags": "+faststart"}, audio)
        try:
            yield writer
        finally:
            writer.close()


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of one uint8 RGB frame (through ffmpeg's PNG encoder)."""
    h, w, _ = rgb.shape
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    """Two frames next to each other with a black gap, for visual comparison."""
    h = left.shape[0]
    return np.concatenate([left, np.zeros((h, gap, 3), np.uint8), right], axis=1)

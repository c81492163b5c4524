"""The classical anchors, run in-process through PyAV: RGB -> yuv420p -> encoder at a CRF ->
packets -> decoder -> yuv420p -> RGB. Every codec's RGB<->YUV conversion is swscale's, the
same as for every other codec."""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..format.errors import UsageError


@dataclass(frozen=True)
class ClassicalCodec:
    """One classical configuration: an encoder, its preset, and the CRFs to start the sweep with."""

    key: str
    encoder: str
    decoder: str
    preset: str
    crfs: tuple[int, ...]
    crf_range: tuple[int, int]

    def options(self, crf: int) -> dict[str, str]:
        opts = {"crf": str(crf), "preset": self.preset}
        if self.encoder == "libx265":
            opts["x265-params"] = "log-level=error"
        return opts


CLASSICAL = {
    "x264": [ClassicalCodec("x264", "libx264", "h264", "medium", (23, 28, 33, 38, 43, 48), (0, 51)),
             ClassicalCodec("x264", "libx264", "h264", "veryslow", (23, 28, 33, 38, 43, 48), (0, 51))],
    "x265": [ClassicalCodec("x265", "libx265", "hevc", "medium", (23, 28, 33, 38, 43, 48), (0, 51))],
    "av1": [ClassicalCodec("av1", "libsvtav1", "libdav1d", "8", (30, 38, 45, 52, 58, 63), (1, 63))],
}


def parse_codecs(text: str) -> list[ClassicalCodec]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLASSICAL]
    if unknown:
        raise UsageError(f"unknown codec {unknown[0]!r}; choose from {', '.join(CLASSICAL)}")
    return [c for n in names for c in CLASSICAL[n]]


def run_classical(codec: ClassicalCodec, crf: int, frames: np.ndarray, fps: Fraction) -> tuple[int, np.ndarray,
                                                                                               float, float]:
    """Encode RGB frames at one CRF in-process; returns (bytes, decoded RGB, enc s, dec s)."""
    n, h, w, _ = frames.shape
    enc = av.CodecContext.create(codec.encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1) / fps
    enc.framerate = fps
    enc.options = codec.options(crf)
    convert = VideoReformatter()  # keeps its swscale context across frames, as a player would
    t0 = time.perf_counter()
    packets = []
    for i, rgb in enumerate(frames):
        frame = convert.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p")
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    enc_s = time.perf_counter() - t0
    size = sum(p.size for p in packets)
    dec = av.CodecContext.create(codec.decoder, "r")
    t0 = time.perf_counter()
    out = []
    for p in packets:
        out += [convert.reformat(f, format="rgb24").to_ndarray() for f in dec.decode(p)]
    out += [convert.reformat(f, format="rgb24").to_ndarray() for f in dec.decode(None)]
    dec_s = time.perf_counter() - t0
    if len(out) != n:
        raise RuntimeError(f"{codec.encoder} at crf {crf}: decoded {len(out)} of {n} frames")
    return size, np.stack(out), enc_s, dec_s

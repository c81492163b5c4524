"""A movie's sound: read from the source, coded to Opus in chunks that cover the latent chunks'
time spans, and decoded back to samples.

Every audio chunk is its own Opus stream: the chunk's samples plus PREROLL_S of the audio
before them, which the decoder runs through and drops (with the encoder's own pre-skip, which
its OpusHead names). So a seek or a resume decodes a chunk with no other chunk, and the
samples it gives are exactly the chunk's span, sample for sample: picture and sound cannot drift.

A chunk's payload::

    u32 preroll samples to drop after the pre-skip | (u16 length, Opus packet) ...

Opus runs at 48 kHz; sources are resampled to it. A source whose audio starts later than its
video is padded with silence at the front, one that starts earlier is cut, so sample 0 is the
first frame's time.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np

from .format.audio_info import DEFAULT_AUDIO_KBPS, RATE, AudioInfo
from .format.errors import CorruptContainer, UsageError, VideoError

FRAME = 960  # 20 ms, Opus's default frame
PREROLL_S = 0.08  # what Opus needs to converge after a cold start (RFC 7845 recommends 80 ms)
DEFAULT_KBPS = DEFAULT_AUDIO_KBPS
MIN_KBPS, MAX_KBPS = 6, 256
_U32, _U16 = struct.Struct("<I"), struct.Struct("<H")


def check_kbps(kbps: float) -> float:
    if not MIN_KBPS <= kbps <= MAX_KBPS:
        raise UsageError(f"--audio-kbps must be between {MIN_KBPS} and {MAX_KBPS}, got {kbps:g}")
    return kbps


def read_audio(path: str, max_seconds: float | None = None) -> np.ndarray | None:
    """The source's first audio track as float32 (channels, samples) at 48 kHz, mono or stereo,
    aligned so sample 0 is the first video frame's time; None when it has no audio."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise VideoError(f"{path}: {e}") from None
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        channels = 1 if (stream.codec_context.channels or 1) == 1 else 2
        resampler = av.AudioResampler(format="fltp", layout="mono" if channels == 1 else "stereo", rate=RATE)
        video = container.streams.video[0] if container.streams.video else None
        offset = _start(stream) - (_start(video) if video is not None else 0.0)
        pieces = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray())
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray())
        except av.FFmpegError as e:
            raise VideoError(f"{path}: audio track unreadable ({e})") from None
    pcm = np.concatenate(pieces, axis=1).astype(np.float32) if pieces else np.zeros((channels, 0), np.float32)
    shift = round(offset * RATE)
    if shift > 0:
        pcm = np.concatenate([np.zeros((channels, shift), np.float32), pcm], axis=1)
    elif shift < 0:
        pcm = pcm[:, -shift:]
    if max_seconds is not None:
        pcm = pcm[:, : round(max_seconds * RATE)]
    return np.ascontiguousarray(pcm)


def _start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def frame_sample(frame: int, fps) -> int:
    """The 48 kHz sample at a frame's time: where the sound is cut (chunk_spans) and trimmed."""
    return round(frame * RATE / Fraction(fps))


def chunk_spans(chunk_starts: list[int], frames: int, fps: Fraction) -> list[tuple[int, int]]:
    """Each latent chunk's span in samples: [first frame's time, next chunk's) at 48 kHz."""
    bounds = [*chunk_starts, frames]
    return [(frame_sample(a, fps), frame_sample(b, fps)) for a, b in zip(bounds, bounds[1:])]


def container_sound(container, start: int, stop: int):
    """For each latent chunk of a container (codec.format.container.Container) with frames in
    [start, stop): (the frame its piece ends at, the samples that play over those frames)."""
    h = container.header
    for i, c in enumerate(container.chunks):
        if c.end <= start:
            continue
        if c.start >= stop:
            break
        pcm = decode_chunk(h.audio, container.read_audio(i), container.audio_chunks[i].n_frames)
        first, a, b = frame_sample(c.start, h.fps), max(start, c.start), min(stop, c.end)
        yield b, pcm[:, frame_sample(a, h.fps) - first : frame_sample(b, h.fps) - first]


def _encoder(channels: int, kbps: float) -> av.CodecContext:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = RATE, "mono" if channels == 1 else "stereo", "flt"
    enc.bit_rate = int(kbps * 1000)
    # Unconstrained VBR spent 1.6 times the asked rate on tonal sound; constrained keeps to it.
    enc.options = {"vbr": "constrained"}
    enc.open()
    return enc


def encode_chunks(pcm: np.ndarray, spans: list[tuple[int, int]], kbps: float) -> tuple[AudioInfo, list[bytes]]:
    """Opus chunks for ``spans`` of ``pcm`` (channels, samples), each decodable on its own; the
    track is padded with silence where it ends before the video."""
    channels = pcm.shape[0]
    need = spans[-1][1] if spans else 0
    if pcm.shape[1] < need:
        pcm = np.concatenate([pcm, np.zeros((channels, need - pcm.shape[1]), np.float32)], axis=1)
    preroll = round(PREROLL_S * RATE)
    payloads, extradata = [], b""
    for s0, s1 in spans:
        a = max(0, s0 - preroll)
        enc = _encoder(channels, kbps)
        extradata = bytes(enc.extradata or b"")
        piece = np.ascontiguousarray(pcm[:, a:s1].T.reshape(1, -1))  # interleaved "flt"
        packets = []
        for i in range(0, s1 - a, FRAME):
            n = min(FRAME, s1 - a - i)
            block = piece[:, i * channels : (i + n) * channels]
            if n < FRAME:
                block = np.pad(block, ((0, 0), (0, (FRAME - n) * channels)))
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout=enc.layout)
            frame.sample_rate, frame.pts = RATE, i
            packets += enc.encode(frame)
        packets += enc.encode(None)
        body = b"".join(_U16.pack(len(bytes(p))) + bytes(p) for p in packets)
        payloads.append(_U32.pack(s0 - a) + body)
    return AudioInfo(channels=channels, kbps=kbps, extradata=extradata), payloads


def decode_chunk(info: AudioInfo, payload: bytes, samples: int) -> np.ndarray:
    """float32 (channels, samples) of one chunk; CorruptContainer when it does not decode to them."""
    if len(payload) < 4:
        raise CorruptContainer("audio chunk is truncated")
    (skip,) = _U32.unpack_from(payload)
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate, dec.layout = RATE, info.layout
    dec.extradata = info.extradata
    to_planar = av.AudioResampler(format="fltp", layout=info.layout, rate=RATE)
    out, at = [], 4
    try:
        while at < len(payload):
            if at + 2 > len(payload):
                raise CorruptContainer("audio chunk is truncated inside a packet")
            (n,) = _U16.unpack_from(payload, at)
            packet = payload[at + 2 : at + 2 + n]
            if len(packet) != n:
                raise CorruptContainer("audio chunk is truncated inside a packet")
            at += 2 + n
            for frame in dec.decode(av.Packet(packet)):
                for planar in to_planar.resample(frame):
                    out.append(planar.to_ndarray())
    except av.FFmpegError as e:
        raise CorruptContainer(f"audio chunk does not decode ({e})") from None
    pcm = np.concatenate(out, axis=1) if out else np.zeros((info.channels, 0), np.float32)
    pcm = pcm[:, skip : skip + samples]
    if pcm.shape != (info.channels, samples):
        raise CorruptContainer(f"audio chunk holds {pcm.shape[1]} samples where {samples} were promised")
    return np.ascontiguousarray(pcm, dtype=np.float32)

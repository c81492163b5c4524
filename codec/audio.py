"""A movie's sound: read from the source, coded to Opus in chunks that cover the latent chunks'
time spans, and decoded back to samples.

Every audio chunk is its own Opus stream: the chunk's samples plus PREROLL_S of the audio
before them, which the decoder runs through and drops (with the encoder's own pre-skip, which
its OpusHead names). So a seek or a resume decodes a chunk with no other chunk, and the
samples it gives are exactly the chunk's span, sample for sample: picture and sound cannot drift.

A chunk's payload::

    i32 lead | (u16 length, packet) ...

``lead`` counts samples at the coded rate: the preroll to drop once the decoder has started
(after its own pre-skip), or, when negative, silence to put before what it decodes (a track
that starts after the picture).

Opus runs at 48 kHz; sources are resampled to it. A source whose audio starts later than its
video is padded with silence at the front, one that starts earlier is cut, so sample 0 is the
first frame's time.

``--audio copy`` (copy_chunks) keeps an Opus or AAC track's own packets instead: each chunk
is the packets over its span plus PREROLL_S before it, cut from the source without decoding.
AAC keeps its own rate and is resampled to 48 kHz as it is decoded.
"""

from __future__ import annotations

import logging
import struct
from fractions import Fraction

import av
import numpy as np

from .format.audio_info import AUDIO_COPY, COPYABLE, DEFAULT_AUDIO_KBPS, RATE, AudioInfo
from .format.errors import CorruptContainer, UsageError, VideoError

log = logging.getLogger(__name__)

FRAME = 960  # 20 ms, Opus's default frame
PREROLL_S = 0.08  # what Opus needs to converge after a cold start (RFC 7845 recommends 80 ms)
DEFAULT_KBPS = DEFAULT_AUDIO_KBPS
MIN_KBPS, MAX_KBPS = 6, 256
_LEAD, _U16 = struct.Struct("<i"), struct.Struct("<H")
# A source's sound this much longer or shorter than its picture is worth a warning: it is cut at
# the picture's end, or padded with silence.
MISMATCH_WARN_S = 0.5
_DECODERS = {"opus": "libopus", "aac": "aac"}


def check_kbps(kbps: float | str) -> float | str:
    """A rate for --audio-kbps, or AUDIO_COPY; UsageError otherwise."""
    if kbps == AUDIO_COPY:
        return kbps
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
        stream = _decodable(container.streams.audio[0], path)
        channels = 1 if (stream.codec_context.channels or 1) == 1 else 2
        resampler = av.AudioResampler(format="fltp", layout="mono" if channels == 1 else "stereo", rate=RATE)
        video = container.streams.video[0] if container.streams.video else None
        offset = _start(stream) - (_start(video) if video is not None else 0.0)
        try:
            pieces = _resampled_frames(resampler, container.decode(stream))
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


def _decodable(stream, path: str):
    """``stream``, once PyAV has a decoder for it; VideoError naming the way out otherwise."""
    if stream.codec_context is None:
        tag = stream.codec_tag if getattr(stream, "codec_tag", "") else "an unknown codec"
        raise VideoError(f"{path}: its audio track is coded in {tag}, which PyAV cannot decode here; "
                         "give --no-audio to leave the sound out")
    return stream


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
        a, b = max(start, c.start), min(stop, c.end)
        yield b, over_frames(pcm, c.start, a, b, h.fps)


def over_frames(pcm: np.ndarray, chunk_start: int, a: int, b: int, fps) -> np.ndarray:
    """The samples of a chunk's sound (it starts at frame ``chunk_start``) that play over frames [a, b)."""
    first = frame_sample(chunk_start, fps)
    return pcm[:, frame_sample(a, fps) - first : frame_sample(b, fps) - first]


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
        payloads.append(_LEAD.pack(s0 - a) + _packed(packets))
    return AudioInfo(channels=channels, kbps=kbps, extradata=extradata), payloads


def _packed(packets) -> bytes:
    return b"".join(_U16.pack(len(bytes(p))) + bytes(p) for p in packets)


def warn_mismatch(sound_s: float, picture_s: float) -> None:
    """Say so when the source's sound is much longer (cut) or shorter (padded) than its picture."""
    if sound_s > picture_s + MISMATCH_WARN_S:
        log.warning("the sound runs %.1f s past the picture's end; it is cut there", sound_s - picture_s)
    elif sound_s < picture_s - MISMATCH_WARN_S:
        log.warning("the sound ends %.1f s before the picture; the rest is silence", picture_s - sound_s)


def _opus_samples(packet: bytes) -> int:
    """Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716, section 3.1)."""
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:
        size = (480, 960, 1920, 2880)[config & 3]  # SILK: 10, 20, 40, 60 ms
    elif config < 16:
        size = (480, 960)[config & 1]  # hybrid: 10, 20 ms
    else:
        size = (120, 240, 480, 960)[config & 3]  # CELT: 2.5, 5, 10, 20 ms
    frames = 1 if code == 0 else 2 if code in (1, 2) else (packet[1] & 0x3F if len(packet) > 1 else 0)
    return size * frames


def copy_chunks(path: str, spans: list[tuple[int, int]]) -> tuple[AudioInfo, list[bytes]] | None:
    """The source's own Opus or AAC packets cut into chunks for ``spans`` (48 kHz samples from
    the first video frame); no decoding, no loss. None when it has no audio; UsageError for a
    track --audio copy cannot keep."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = _decodable(container.streams.audio[0], path)
        video_start_s = _start(container.streams.video[0]) if container.streams.video else 0.0
        ctx = stream.codec_context
        name, rate, channels = ctx.name, ctx.sample_rate, ctx.channels or 0
        if name not in COPYABLE or channels not in (1, 2) or (name == "opus" and rate != RATE):
            raise UsageError(f"--audio copy keeps mono or stereo Opus or AAC; this track is {name} with {channels} "
                             f"channel{'' if channels == 1 else 's'}: leave out --audio copy to re-code it to Opus")
        extradata = bytes(ctx.extradata or b"")
        frame_size = ctx.frame_size or 1024
        packets = [(p.pts, float(p.time_base), bytes(p)) for p in container.demux(stream) if p.size]
    # The Opus decoder drops its pre-skip when it starts; an AAC one gives every sample it decodes.
    delay = _U16.unpack_from(extradata, 10)[0] if name == "opus" and extradata[:8] == b"OpusHead" else 0
    times, at = [], None  # each packet's first sample at the coded rate, from the first video frame
    for pts, tb, data in packets:
        n = _opus_samples(data) if name == "opus" else frame_size
        stamped = round((pts * tb - video_start_s) * rate) if pts is not None else at
        # Sample counts keep the timeline exact where the container's clock is coarse (Matroska's
        # milliseconds); a real gap in the source moves it on.
        if at is None or (stamped is not None and abs(stamped - at) > n // 2):
            at = stamped if stamped is not None else 0
        times.append(at)
        at += n
    preroll, payloads, sent = round(PREROLL_S * rate), [], 0
    for s0, s1 in spans:
        c0, c1 = round(s0 * rate / RATE), round(s1 * rate / RATE)
        j = 0
        while j + 1 < len(times) and times[j + 1] + delay <= c0 - preroll:
            j += 1
        k = j
        while k < len(times) and times[k] < c1:
            k += 1
        picked = [data for _, _, data in packets[j:k]]
        lead = c0 - (times[j] + delay) if picked else -(c1 - c0)
        payloads.append(_LEAD.pack(lead) + _packed(picked))
        sent += len(payloads[-1])
    seconds = (spans[-1][1] / RATE) if spans else 0.0
    warn_mismatch((at or 0) / rate if times else 0.0, seconds)
    kbps = max(0.001, 8 * sent / 1000 / seconds) if seconds else 0.001
    return AudioInfo(channels=channels, kbps=round(kbps, 3), extradata=extradata, codec=name, rate=rate,
                     copied=True), payloads


def decode_chunk(info: AudioInfo, payload: bytes, samples: int) -> np.ndarray:
    """float32 (channels, samples) at 48 kHz of one chunk; CorruptContainer when it does not
    decode to them."""
    if len(payload) < 4:
        raise CorruptContainer("audio chunk is truncated")
    (lead,) = _LEAD.unpack_from(payload)
    if info.codec not in _DECODERS:
        raise CorruptContainer(f"audio coded as {info.codec!r}, which this player does not decode")
    dec = av.CodecContext.create(_DECODERS[info.codec], "r")
    dec.sample_rate, dec.layout = info.rate, info.layout
    dec.extradata = info.extradata
    to_planar = av.AudioResampler(format="fltp", layout=info.layout, rate=info.rate)
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
    pcm = pcm[:, lead:] if lead >= 0 else np.concatenate([np.zeros((info.channels, -lead), np.float32), pcm], axis=1)
    if info.rate != RATE:
        pcm = _resampled(pcm, info)
    if info.copied and pcm.shape[1] < samples:  # the source's track ended before the picture
        pcm = np.concatenate([pcm, np.zeros((info.channels, samples - pcm.shape[1]), np.float32)], axis=1)
    pcm = pcm[:, :samples]
    if pcm.shape != (info.channels, samples):
        raise CorruptContainer(f"audio chunk holds {pcm.shape[1]} samples where {samples} were promised")
    return np.ascontiguousarray(pcm, dtype=np.float32)


def _resampled(pcm: np.ndarray, info: AudioInfo) -> np.ndarray:
    """(channels, n) float32 at the coded rate to 48 kHz."""
    if pcm.shape[1] == 0:
        return pcm
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, dtype=np.float32), format="fltp",
                                       layout=info.layout)
    frame.sample_rate, frame.pts = info.rate, 0
    pieces = _resampled_frames(av.AudioResampler(format="fltp", layout=info.layout, rate=RATE), [frame])
    return np.concatenate(pieces, axis=1) if pieces else pcm[:, :0]


def _resampled_frames(resampler: av.AudioResampler, frames) -> list[np.ndarray]:
    """Every frame through ``resampler``, then what it still holds, as (channels, n) arrays."""
    out = [piece.to_ndarray() for frame in frames for piece in resampler.resample(frame)]
    return out + [piece.to_ndarray() for piece in resampler.resample(None)]

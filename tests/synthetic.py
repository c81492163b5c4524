"""Synthetic test clips: moving shapes over a drifting gradient, made fresh by each test run."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from latentcast.codec import video


def make_frames(n: int = 24, width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """uint8 (n, H, W, 3): a colour gradient that drifts, a moving square and a moving disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)
    c1, c2 = rng.integers(40, 255, 3), rng.integers(40, 255, 3)
    for t in range(n):
        phase = t / max(1, n)
        img = np.stack([
            128 + 100 * np.sin(2 * np.pi * (xx / width + phase)),
            128 + 100 * np.cos(2 * np.pi * (yy / height - phase)),
            np.full_like(xx, 60 + 120 * phase),
        ], axis=-1)
        sx = int((width - 16) * phase)
        img[height // 4 : height // 4 + 14, sx : sx + 14] = c1
        cx, cy = width * (1 - phase) - 8, height * 0.65
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 49] = c2
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_clip(path: str | Path, frames: np.ndarray, fps: int = 12) -> Path:
    """Write frames losslessly (.mkv) or as H.264 (.mp4) through the project's own writer."""
    n, h, w, _ = frames.shape
    with video.open_writer(str(path), w, h, Fraction(fps)) as writer:
        for f in frames:
            writer.write(f)
    return Path(path)


def damage_chunk(store, movie_id: str, index: int) -> None:
    """Flip a byte of a stored movie's chunk ``index`` (its checksum then fails)."""
    from latentcast.codec.format.container import Container

    path = store.movie_path(movie_id)
    with Container(path) as c:
        victim = c.chunks[index]
    raw = bytearray(path.read_bytes())
    raw[victim.payload_offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def music_like(seconds: float, rate: int = 48000) -> np.ndarray:
    """A 440 Hz tone over a 200 Hz - 8 kHz chirp, mono float32 (1, n)."""
    t = np.arange(int(seconds * rate)) / rate
    chirp = np.sin(2 * np.pi * (200 * t + (8000 - 200) / (2 * seconds) * t ** 2))
    return (0.15 * (np.sin(2 * np.pi * 440 * t) + chirp)).astype(np.float32)[None]


def speech_like(seconds: float, rate: int = 48000) -> np.ndarray:
    """Voiced syllables: a gliding 110-160 Hz pitch with its harmonics to 4 kHz under a 4 Hz
    syllable envelope, with pauses; mono float32 (1, n)."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 135 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, int(4000 / 160)))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.25 * t) > -0.5)
    return (0.2 * voice * envelope).astype(np.float32)[None]


def write_clip_with_sound(path: str | Path, frames: np.ndarray, fps: int, pcm: np.ndarray,
                          audio_start_s: float = 0.0, codec: str = "flac", rate: int = 48000) -> Path:
    """A clip of ``frames`` with ``pcm`` (channels, n) at 48 kHz, its first sample at
    ``audio_start_s`` on the video's clock (a source whose sound starts late or early). By
    default a lossless .mkv with FLAC; ``codec`` "libopus" or "aac" (at ``rate``) codes the sound
    as a source a user would have, in .mkv or .mp4 as the path says."""
    import av

    n, h, w, _ = frames.shape
    mp4 = Path(path).suffix == ".mp4"
    layout = "mono" if pcm.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format="mp4" if mp4 else "matroska") as out:
        if mp4:  # lossless H.264: mp4 carries no FFV1
            vs = out.add_stream("libx264", rate=fps, options={"qp": "0"})
            vs.pix_fmt = "yuv444p"
        else:
            vs = out.add_stream("ffv1", rate=fps)
            vs.pix_fmt = "bgr0"
        vs.width, vs.height = w, h
        aus = out.add_stream(codec, rate=rate, layout=layout)
        if codec != "flac":
            aus.bit_rate = 96000
        fmt = aus.codec_context.format.name
        source = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, dtype=np.float32), format="fltp", layout=layout)
        source.sample_rate, source.pts, source.time_base = 48000, 0, Fraction(1, 48000)
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        coded = [f.to_ndarray() for f in resampler.resample(source) + resampler.resample(None)]
        samples = np.concatenate(coded, axis=1) if coded else np.zeros((1, 0), np.float32)
        planar = fmt.endswith("p")
        channels = pcm.shape[0]
        total = samples.shape[1] if planar else samples.shape[1] // channels
        step = aus.codec_context.frame_size or 4800
        first = round(audio_start_s * rate)
        for i in range(0, total, step):
            block = samples[:, i : i + step] if planar else samples[:, i * channels : (i + step) * channels]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=fmt, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, first + i, Fraction(1, rate)
            for packet in aus.encode(frame):
                out.mux(packet)
        for packet in aus.encode(None):
            out.mux(packet)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").reformat(format=vs.pix_fmt)
            vf.pts = i
            for packet in vs.encode(vf):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    return Path(path)


def read_sound(path: str | Path) -> np.ndarray:
    """The first audio track of a file, float32 (channels, n), as its decoder gives it."""
    import av

    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="fltp", rate=48000)
        pieces = [o.to_ndarray() for f in c.decode(audio=0) for o in resampler.resample(f)]
        pieces += [o.to_ndarray() for o in resampler.resample(None)]
    return np.concatenate(pieces, axis=1)


def flash_and_click(n: int, fps: int, flash: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Dark 64x48 frames with a white one at ``flash``, and music-like sound with a 1 ms click at
    that frame's time: a sync test's source."""
    frames = make_frames(n, 64, 48, seed=seed) // 4
    frames[flash] = 255
    pcm = music_like(n / fps) * 0.3
    at = round(flash / fps * 48000)
    pcm[0, at : at + 48] = 0.95
    return frames, pcm


def flash_time(path, fps: int) -> float:
    """When the brightest frame of a video is shown, in seconds."""
    frames = np.stack(list(video.read_frames(path)))
    return float(np.argmax(frames.reshape(len(frames), -1).mean(axis=1))) / fps


def click_time(pcm: np.ndarray) -> float:
    """When the loudest sample of 48 kHz sound plays, in seconds."""
    return float(np.argmax(np.abs(pcm).max(axis=0))) / 48000

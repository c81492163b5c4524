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

"""A container's latents, read chunk by chunk, for the model that encoded it."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..format.container import Container
from ..format.errors import ModelError, UsageError
from ..nn.config import CodecConfig

# A dimension that never moves would divide by zero: its spread is floored at this share of
# the movie's typical spread.
SPREAD_FLOOR = 1e-3


def open_for_model(path: str | Path, cfg: CodecConfig, model_dir: str | Path) -> Container:
    """The container at ``path``, once it is known to be the model's: ModelError otherwise,
    UsageError for one with no frames."""
    container = Container(path)
    h = container.header
    if h.decoder_sha256 != cfg.decoder_sha256:
        container.close()
        raise ModelError(f"{path} was encoded with another model than {model_dir}: it needs decoder "
                         f"{h.decoder_sha256[:12]}…, the model has {cfg.decoder_sha256[:12]}…")
    if not h.frames:
        container.close()
        raise UsageError(f"{path} holds no frames")
    return container


def all_latents(container: Container) -> np.ndarray:
    """(frames, latent_dim) float32, dequantized."""
    pieces = [z for _, z in container.iter_latents()]
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros((0, container.header.latent_dim),
                                                                             np.float32)


def chunks_of(container: Container) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame, latents) chunk by chunk: a whole movie without holding it."""
    for first, z in container.iter_latents():
        yield first, z.astype(np.float32)


def frame_latents(container: Container, frame: int) -> np.ndarray:
    """Frame ``frame``'s latents (latent_dim,); UsageError past the end."""
    frames = container.header.frames
    if not 0 <= frame < frames:
        raise UsageError(f"frame {frame} is outside the movie's {frames} frames (0 to {frames - 1})")
    return next(container.iter_latents(frame, 1))[1][0].astype(np.float32)


def spread(container: Container) -> np.ndarray:
    """Each latent dimension's standard deviation over the movie, floored, in one streaming pass."""
    n, total, squares = 0, None, None
    for _, z in chunks_of(container):
        z = z.astype(np.float64)
        total = z.sum(0) if total is None else total + z.sum(0)
        squares = (z * z).sum(0) if squares is None else squares + (z * z).sum(0)
        n += len(z)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    return np.maximum(std, SPREAD_FLOOR * max(float(std.mean()), 1e-12)).astype(np.float32)

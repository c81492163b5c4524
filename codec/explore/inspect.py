"""One latent direction at a time: decode a frame while a single feature moves from its 5th to
its 95th percentile over the movie, everything else held, and see what changes.

A direction is one latent channel's whole plane (all its grid positions moved together: what
the decoder's first layer reads as one feature map), or a principal component of the movie's
latents. Directions are ranked by how much of the picture they change: the mean absolute
difference, in 8-bit levels, between the sweep's two ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..format.errors import UsageError
from ..nn.config import CodecConfig
from ..runtime.decode import decode_latents
from ..runtime.scene_decoders import SceneDecoders

LOW, HIGH = 5.0, 95.0  # the sweep's ends, as percentiles of the direction's values over the movie
MAX_PCA = 64
PCA_SAMPLE = 20_000  # frames the components are fitted on, evenly spread: a long movie's SVD stays quick


@dataclass
class Direction:
    name: str
    unit: np.ndarray  # (latent_dim,), unit length
    values: np.ndarray  # every frame's coordinate along it

    def ends(self) -> tuple[float, float]:
        return float(np.percentile(self.values, LOW)), float(np.percentile(self.values, HIGH))


def channel_directions(latents: np.ndarray, cfg: CodecConfig) -> list[Direction]:
    """One per latent channel: its whole plane, its coordinate the plane's mean times sqrt(size)."""
    plane = cfg.latent_dim // cfg.latent_channels
    out = []
    for c in range(cfg.latent_channels):
        unit = np.zeros(cfg.latent_dim, np.float32)
        unit[c * plane : (c + 1) * plane] = 1 / np.sqrt(plane)
        out.append(Direction(f"channel {c}", unit, latents @ unit))
    return out


def pca_directions(latents: np.ndarray, count: int) -> list[Direction]:
    """The movie's ``count`` principal components, largest first."""
    if len(latents) < 2:
        raise UsageError("--pca needs a movie of at least 2 frames")
    sample = latents[:: max(1, len(latents) // PCA_SAMPLE)]
    centred = sample - sample.mean(0)
    _, sv, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    share = sv ** 2 / max(float((sv ** 2).sum()), 1e-12)
    return [Direction(f"PC {i + 1} ({100 * share[i]:.1f} %)", vt[i].astype(np.float32), latents @ vt[i])
            for i in range(min(count, len(vt)))]


def sweep(z: np.ndarray, direction: Direction, steps: int) -> np.ndarray:
    """(steps, latent_dim): ``z`` moved along the direction from its low end to its high end."""
    lo, hi = direction.ends()
    at = float(z @ direction.unit)
    return np.stack([z + (t - at) * direction.unit for t in np.linspace(lo, hi, steps)]).astype(np.float32)


@dataclass
class Inspection:
    ranking: list[tuple[str, float]]  # (direction, mean |change| in levels), most first
    rows: list[list[np.ndarray]]  # the top directions' sweeps, decoded
    row_titles: list[str]
    captions: list[list[str]]


def inspect_frame(latents: np.ndarray, frame: int, decoders: SceneDecoders, cfg: CodecConfig, pca: bool = False,
                  steps: int = 7, rows: int = 8) -> Inspection:
    """Rank every direction for ``frame`` of a movie with ``latents``, and decode the sweeps of the
    ``rows`` that change the picture most."""
    if not 0 <= frame < len(latents):
        raise UsageError(f"frame {frame} is outside the movie's {len(latents)} frames (0 to {len(latents) - 1})")
    if steps < 2:
        raise UsageError("--steps must be 2 or more")
    directions = pca_directions(latents, MAX_PCA) if pca else channel_directions(latents, cfg)
    decoder = decoders.decoder_at(frame)
    z = latents[frame]

    def frames_of(block: np.ndarray) -> np.ndarray:
        return np.concatenate(list(decode_latents(decoder, block)))

    ends = frames_of(np.concatenate([sweep(z, d, 2) for d in directions])).astype(np.int16)
    change = [float(np.abs(ends[2 * i + 1] - ends[2 * i]).mean()) for i in range(len(directions))]
    order = sorted(range(len(directions)), key=lambda i: -change[i])
    top = order[:rows]
    decoded, captions = [], []
    for i in top:
        d = directions[i]
        decoded.append(list(frames_of(sweep(z, d, steps))))
        captions.append([f"{t:+.2f}" for t in np.linspace(*d.ends(), steps)])
    return Inspection([(directions[i].name, change[i]) for i in order], decoded,
                      [f"{directions[i].name}: {change[i]:.1f}" for i in top], captions)

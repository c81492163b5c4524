"""Scene cuts from a movie's latents: where the code of one frame jumps away from the last.

Within a shot, consecutive frames' latents move a little; at a cut they jump. Each latent
dimension is first measured in its own typical frame-to-frame step (the median absolute step
over the movie), so a dimension that moves a lot within shots counts no more than one that
moves only at cuts. Scaling by a dimension's spread instead halves the contrast of a movie with
few scenes, where the spread is the cut itself. The jump at frame t is the distance from frame
t-1's latents to frame t's, against the movie's typical jump (its median): a cut is a jump
``sensitivity`` times the typical one, the largest within ``min_scene_s`` of any other cut. numpy alone, so both the
encoder side (ingest, per-scene training) and the latent tools share this one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format.errors import UsageError

DEFAULT_SENSITIVITY = 12.0  # jumps this many times the median are cuts (docs/experiments.md)
DEFAULT_MIN_SCENE_S = 1.0  # no scene shorter than this, except where the movie is


@dataclass(frozen=True)
class Scene:
    """Frames [start, end) of a movie."""

    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def jumps(latents: np.ndarray) -> np.ndarray:
    """For each frame t >= 1, how far its latents are from frame t-1's, over the median such
    distance (n - 1 values; 1 is a typical step within a shot). ``latents`` may be a memmap."""
    z = np.asarray(latents, np.float32)
    if z.ndim != 2 or len(z) < 2:
        return np.zeros(max(0, len(z) - 1), np.float32)
    diff = np.abs(np.diff(z, axis=0)).astype(np.float64)
    scale = np.median(diff, axis=0)
    # A dimension that holds still in most frames (median step 0, as quantized latents do) is
    # measured in its mean step instead, and a floor at a thousandth of the busiest dimension's
    # step keeps one that never moves from turning any change into an infinite jump.
    scale = np.where(scale > 0, scale, diff.mean(axis=0))
    floor = max(float(scale.max()) * 1e-3, 1e-30)
    step = np.linalg.norm(diff / np.maximum(scale, floor)[None, :], axis=1)
    typical = float(np.median(step))
    score = step / typical if typical > 0 else np.where(step > 0, np.inf, 0)
    return score.astype(np.float32)


def scene_cuts(latents: np.ndarray, fps: float, sensitivity: float = DEFAULT_SENSITIVITY,
               min_scene_s: float = DEFAULT_MIN_SCENE_S) -> list[int]:
    """The first frame of every scene but the first, in order."""
    if sensitivity <= 1:
        raise UsageError(f"scene sensitivity must be above 1 (a typical step), got {sensitivity}")
    if fps <= 0 or min_scene_s < 0:
        raise UsageError("scene splitting needs a positive fps and a non-negative minimum length")
    score = jumps(latents)
    n = len(score) + 1
    gap = max(1, int(round(min_scene_s * fps)))
    cuts: list[int] = []
    # Strongest jumps first: a weaker one near a stronger one is the same cut's aftermath.
    for i in np.argsort(-score, kind="stable"):
        if score[i] < sensitivity:
            break
        frame = int(i) + 1
        if frame < gap or n - frame < gap or any(abs(frame - c) < gap for c in cuts):
            continue
        cuts.append(frame)
    return sorted(cuts)


def split_scenes(latents: np.ndarray, fps: float, sensitivity: float = DEFAULT_SENSITIVITY,
                 min_scene_s: float = DEFAULT_MIN_SCENE_S) -> list[Scene]:
    """The movie as consecutive scenes, covering every frame once."""
    bounds = [0, *scene_cuts(latents, fps, sensitivity, min_scene_s), len(latents)]
    return [Scene(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]

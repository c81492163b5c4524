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
DEFAULT_MIN_SHOT_S = 0.3  # shots for chapters: a cut this close to another is its aftermath
# Neighbouring shots whose mean latents lie within this RMS distance (each dimension in its
# spread within shots) are one scene: their means differ by less than a shot moves. On the test
# movie its 12 shots' neighbours lay 1.2-1.9 apart, from one source or two alike, so at 1 every
# shot is its own scene there: a per-movie code does not group shots by setting
# (docs/experiments.md).
DEFAULT_SCENE_DISTANCE = 1.0


@dataclass(frozen=True)
class Scene:
    """Frames [start, end) of a movie."""

    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def _floored(scale: np.ndarray) -> np.ndarray:
    """Per-dimension scales, none under a thousandth of the largest: a dimension that never moves
    must not turn any change into an infinite distance."""
    return np.maximum(scale, max(float(scale.max()) * 1e-3, 1e-30))


SCALE_SAMPLE = 20_000  # frame steps the per-dimension scale is measured on, spread over the movie
SLICE = 4096  # frames at a time, so a 2-hour movie's latents (a memmap) are never all in memory


def jumps(latents: np.ndarray) -> np.ndarray:
    """For each frame t >= 1, how far its latents are from frame t-1's, over the median such
    distance (n - 1 values; 1 is a typical step within a shot). ``latents`` may be a memmap:
    it is read a slice at a time."""
    n = len(latents)
    if np.ndim(latents) != 2 or n < 2:
        return np.zeros(max(0, n - 1), np.float32)
    # The median step of each dimension, measured on at most SCALE_SAMPLE steps spread evenly
    # over the movie (all of them in anything under 17 minutes at 20 fps).
    at = np.unique(np.linspace(1, n - 1, min(n - 1, SCALE_SAMPLE)).round().astype(np.int64))
    sample = np.abs(np.asarray(latents[at], np.float64) - np.asarray(latents[at - 1], np.float64))
    scale = np.median(sample, axis=0)
    # A dimension that holds still in most frames (median step 0, as quantized latents do) is
    # measured in its mean step instead.
    scale = _floored(np.where(scale > 0, scale, sample.mean(axis=0)))
    step = np.empty(n - 1, np.float64)
    for s in range(1, n, SLICE):
        e = min(n, s + SLICE)
        z = np.asarray(latents[s - 1 : e], np.float64)
        step[s - 1 : e - 1] = np.linalg.norm(np.diff(z, axis=0) / scale, axis=1)
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


@dataclass(frozen=True)
class Chapter:
    """A scene as chapters show it: frames [start, end), made of ``shots`` shots."""

    start: int
    end: int
    shots: int


def group_shots(latents: np.ndarray, cuts: list[int], distance: float = DEFAULT_SCENE_DISTANCE) -> list[Chapter]:
    """Shots (the spans between ``cuts``) grouped into scenes: neighbouring groups whose mean
    latents are closest merge first (agglomerative, average linkage, neighbours only so a scene
    stays one span of the movie) until no two neighbours are within ``distance``."""
    if distance < 0:
        raise UsageError(f"scene distance must be 0 or more, got {distance}")
    n = len(latents)
    if n == 0:
        return []
    bounds = [0, *cuts, n]
    spans = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    # Each shot's sum and sum of squares, a slice at a time (``latents`` may be a memmap).
    sums, squares = [], []
    for a, b in spans:
        total, sq = 0.0, 0.0
        for s in range(a, b, SLICE):
            z = np.asarray(latents[s : min(b, s + SLICE)], np.float64)
            total, sq = total + z.sum(axis=0), sq + (z * z).sum(axis=0)
        sums.append(total)
        squares.append(sq)
    # Each dimension in its spread within shots (pooled): how far apart two shots' means are,
    # against how much a shot moves. The spread over the whole movie would be mostly the
    # differences between shots themselves, and shrink them where there are few.
    within = sum(sq - t * t / (b - a) for (a, b), t, sq in zip(spans, sums, squares)) / n
    spread = _floored(np.sqrt(np.maximum(within, 0)))
    groups = [[a, b, 1, t / spread] for (a, b), t in zip(spans, sums)]

    def gap(i: int) -> float:
        (a0, b0, _, s0), (a1, b1, _, s1) = groups[i], groups[i + 1]
        return float(np.sqrt(np.mean((s0 / (b0 - a0) - s1 / (b1 - a1)) ** 2)))

    gaps = [gap(i) for i in range(len(groups) - 1)]
    while gaps:
        i = int(np.argmin(gaps))
        if gaps[i] > distance:
            break
        (a0, _, k0, s0), (_, b1, k1, s1) = groups[i], groups.pop(i + 1)
        groups[i] = [a0, b1, k0 + k1, s0 + s1]
        del gaps[i]  # only the merged group's two gaps change
        for j in (i - 1, i):
            if 0 <= j < len(gaps):
                gaps[j] = gap(j)
    return [Chapter(a, b, k) for a, b, k, _ in groups]


def chapters(latents: np.ndarray, fps: float, sensitivity: float = DEFAULT_SENSITIVITY,
             min_shot_s: float = DEFAULT_MIN_SHOT_S, distance: float = DEFAULT_SCENE_DISTANCE
             ) -> tuple[list[int], list[Chapter]]:
    """(shot cuts, scenes) of a movie from its latents."""
    cuts = scene_cuts(latents, fps, sensitivity, min_shot_s)
    return cuts, group_shots(latents, cuts, distance)

"""Picture quality on 8-bit RGB with numpy alone: PSNR per frame, luma, and PSNR against a
reference video read in step with the decoded frames. Every side measures with these."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from . import video
from .format.errors import UsageError


def mse_to_psnr(mse: float, peak: float = 255.0) -> float:
    if mse <= 0:
        return float("inf")
    return 10 * math.log10(peak * peak / mse)


def frame_mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame MSE of uint8 frames (N, H, W, 3) or (H, W, 3), on the 0..255 scale."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"frame shapes differ: {a.shape} vs {b.shape}")
    d = (a - b) ** 2
    return d.reshape(d.shape[0], -1).mean(axis=1) if d.ndim == 4 else np.array([d.mean()])


def capped_psnrs(mses: Sequence[float]) -> list[float]:
    """Per-frame PSNR of per-frame MSEs, capped at 100 dB so an identical frame does not make a
    mean infinite."""
    return [min(100.0, mse_to_psnr(m)) for m in mses]


class PSNRMeter:
    """Accumulates per-frame MSE; reports mean per-frame PSNR and PSNR of the mean MSE."""

    def __init__(self) -> None:
        self.mses: list[float] = []

    def update(self, reference: np.ndarray, decoded: np.ndarray) -> None:
        self.mses.extend(frame_mse(reference, decoded).tolist())

    @property
    def psnr(self) -> float:
        """Mean of per-frame PSNR (capped at 100 dB for identical frames)."""
        return float(np.mean(capped_psnrs(self.mses))) if self.mses else float("nan")

    @property
    def psnr_of_mean_mse(self) -> float:
        return mse_to_psnr(float(np.mean(self.mses))) if self.mses else float("nan")

    def span_psnr(self, spans: Sequence[tuple[int, int]]) -> list[float]:
        """Mean per-frame PSNR over each [start, end) span of the frames measured (a scene each)."""
        psnrs = capped_psnrs(self.mses)
        return [float(np.mean(psnrs[a:b])) if b > a else float("nan") for a, b in spans]

    def worst_span_db(self, spans: Sequence[tuple[int, int]]) -> float | None:
        """How far the worst span's PSNR lies from the whole's (<= 0), or None under two spans,
        where there is nothing to compare: the figure behind "no scene starved"."""
        if len(spans) < 2 or not self.mses:
            return None
        return min(self.span_psnr(spans)) - self.psnr



BT601 = (0.299, 0.587, 0.114)
Y_PSNR_STANDARD = "bt601-full-range"


def luma(frames: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma of uint8 RGB frames, as float64 on the 0..255 scale."""
    f = np.asarray(frames, np.float64)
    return f[..., 0] * BT601[0] + f[..., 1] * BT601[1] + f[..., 2] * BT601[2]


class ReferencePSNR:
    """PSNR of decoded frames against a source video read in step with them, from ``start``."""

    def __init__(self, reference: str, size: tuple[int, int], start: int = 0):
        self.reference = reference
        self._frames = itertools.islice(video.read_frames(reference, size), start, None)
        self._meter = PSNRMeter()

    def update(self, decoded: np.ndarray) -> None:
        ref = list(itertools.islice(self._frames, len(decoded)))
        if len(ref) < len(decoded):
            raise UsageError("the reference video has fewer frames than the movie")
        self._meter.update(np.stack(ref), decoded)

    @property
    def psnr(self) -> float:
        return self._meter.psnr

"""Bitrates and timecodes: the arithmetic every report and seek shares."""

from __future__ import annotations

import math

from .errors import UsageError


def kbps(nbytes: int, frames: int, fps: float) -> float:
    """Bitrate of ``nbytes`` spread over ``frames`` at ``fps``."""
    return 0.0 if frames == 0 else nbytes * 8 / (frames / fps) / 1000


def seconds_to_frame(text: str, fps: float) -> int:
    """``"00:01:30"``, ``"1:30.5"`` or ``"90"`` seconds -> frame number."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise UsageError(f"--from must look like HH:MM:SS, MM:SS or seconds, got {text!r}") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise UsageError(f"--from must look like HH:MM:SS, MM:SS or seconds, got {text!r}")
    secs = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return int(math.floor(secs * fps + 1e-9))

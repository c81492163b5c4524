"""Bjøntegaard deltas between rate-distortion curves: BD-rate and BD-PSNR over the overlap,
each curve interpolated with a monotone cubic (PCHIP) through its non-dominated points."""

from __future__ import annotations

import numpy as np


def _pchip(x: np.ndarray, y: np.ndarray):
    """Monotone piecewise-cubic Hermite interpolant (Fritsch-Carlson) through strictly increasing x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
    else:
        for k in range(1, n - 1):
            if delta[k - 1] * delta[k] > 0:
                w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
                d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

        def end(h0, h1, d0, d1):
            s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
            if np.sign(s) != np.sign(d0):
                return 0.0
            if np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
                return 3 * d0
            return s

        d[0] = end(h[0], h[1], delta[0], delta[1])
        d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])

    def f(t):
        t = np.asarray(t, float)
        i = np.clip(np.searchsorted(x, t) - 1, 0, n - 2)
        s = (t - x[i]) / h[i]
        h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2
        h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1)
        return h00 * y[i] + h10 * h[i] * d[i] + h01 * y[i + 1] + h11 * h[i] * d[i + 1]

    return f


def rd_hull(rates, psnrs) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, keeping only those that raise PSNR (a point that costs more bits
    for no more quality says nothing about the curve). Returns (rates, psnrs)."""
    pts = sorted(zip(rates, psnrs))
    out: list[tuple[float, float]] = []
    for r, p in pts:
        if r <= 0:
            continue
        if out and r == out[-1][0]:
            if p > out[-1][1]:
                out[-1] = (r, p)
            continue
        if not out or p > out[-1][1]:
            out.append((r, p))
    return np.array([p[0] for p in out]), np.array([p[1] for p in out])


_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # renamed in NumPy 2


def _mean_gap(xa, ya, xb, yb, samples: int = 2001) -> float | None:
    """Mean of (fb - fa) over the overlap of the x ranges, each curve interpolated with PCHIP."""
    lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    if len(xa) < 2 or len(xb) < 2 or hi <= lo:
        return None
    t = np.linspace(lo, hi, samples)
    gap = _pchip(xb, yb)(t) - _pchip(xa, ya)(t)
    return float(_trapezoid(gap, t) / (hi - lo))


def bd_rate(anchor_rates, anchor_psnrs, test_rates, test_psnrs) -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``anchor``, in percent (negative: test needs
    fewer bits for the same PSNR). None when the PSNR ranges do not overlap."""
    ra, pa = rd_hull(anchor_rates, anchor_psnrs)
    rt, pt = rd_hull(test_rates, test_psnrs)
    if len(ra) < 2 or len(rt) < 2:
        return None
    gap = _mean_gap(pa, np.log10(ra), pt, np.log10(rt))
    return None if gap is None else (10**gap - 1) * 100


def bd_psnr(anchor_rates, anchor_psnrs, test_rates, test_psnrs) -> float | None:
    """Bjøntegaard delta PSNR of ``test`` against ``anchor`` in dB over the overlapping rate range."""
    ra, pa = rd_hull(anchor_rates, anchor_psnrs)
    rt, pt = rd_hull(test_rates, test_psnrs)
    if len(ra) < 2 or len(rt) < 2:
        return None
    return _mean_gap(np.log10(ra), pa, np.log10(rt), pt)

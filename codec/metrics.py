"""Quality metrics: PSNR on 8-bit RGB and MS-SSIM (differentiable, for the training loss)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


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


class PSNRMeter:
    """Accumulates per-frame MSE; reports mean per-frame PSNR and PSNR of the mean MSE."""

    def __init__(self) -> None:
        self.mses: list[float] = []

    def update(self, reference: np.ndarray, decoded: np.ndarray) -> None:
        self.mses.extend(frame_mse(reference, decoded).tolist())

    @property
    def psnr(self) -> float:
        """Mean of per-frame PSNR (capped at 100 dB for identical frames)."""
        return float(np.mean([min(100.0, mse_to_psnr(m)) for m in self.mses])) if self.mses else float("nan")

    @property
    def psnr_of_mean_mse(self) -> float:
        return mse_to_psnr(float(np.mean(self.mses))) if self.mses else float("nan")


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Decoder output (N,3,H,W) in [0,1] -> uint8 (N,H,W,3), rounding as the player does."""
    x = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def to_tensor(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (N,3,H,W) in [0,1]."""
    t = torch.as_tensor(frames).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255)


def _gaussian(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c1, c2 = 0.01**2, 0.03**2
    ch = x.shape[1]
    k = win.numel()
    wh = win.view(1, 1, 1, k).expand(ch, 1, 1, k)
    wv = win.view(1, 1, k, 1).expand(ch, 1, k, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, wh, groups=ch), wv, groups=ch)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * cs
    return ssim.mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ms_ssim_scales(height: int, width: int, win: int = 11) -> int:
    """How many of the 5 MS-SSIM scales fit: the coarsest must still hold one window."""
    scales = 0
    h, w = height, width
    while scales < 5 and min(h, w) >= win:
        scales += 1
        h, w = h // 2, w // 2
    return scales


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int | None = None) -> torch.Tensor:
    """MS-SSIM per image of (N,3,H,W) tensors in [0,1] (Wang et al. 2003, 11x11 Gaussian window).

    Small frames use fewer scales with the weights renormalised; frames under 11 pixels raise.
    """
    n = scales or ms_ssim_scales(x.shape[-2], x.shape[-1])
    if n == 0:
        raise ValueError(f"frames of {x.shape[-1]}x{x.shape[-2]} are too small for MS-SSIM")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:n], device=x.device, dtype=x.dtype)
    weights = weights / weights.sum()
    win = _gaussian(11, 1.5, x.device, x.dtype)
    values = []
    for i in range(n):
        ssim, cs = _ssim_parts(x, y, win)
        values.append(torch.relu(ssim if i == n - 1 else cs))
        if i < n - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values, dim=0)  # (scales, N)
    return torch.prod(stacked ** weights.view(-1, 1), dim=0)


# -- luma PSNR ---------------------------------------------------------------------------------

BT601 = (0.299, 0.587, 0.114)
Y_PSNR_STANDARD = "bt601-full-range"


def luma(frames: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma of uint8 RGB frames, as float64 on the 0..255 scale."""
    f = np.asarray(frames, np.float64)
    return f[..., 0] * BT601[0] + f[..., 1] * BT601[1] + f[..., 2] * BT601[2]


# -- Bjøntegaard deltas ------------------------------------------------------------------------

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

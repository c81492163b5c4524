"""MS-SSIM (Wang et al. 2003), differentiable: a training loss term and a benchmark metric."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


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

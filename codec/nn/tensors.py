"""Frames between numpy's uint8 (N, H, W, 3) and torch's float (N, 3, H, W) in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Decoder output (N,3,H,W) in [0,1] -> uint8 (N,H,W,3), rounding as the player does."""
    x = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def to_tensor(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (N,3,H,W) in [0,1]."""
    t = torch.as_tensor(frames).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255)

"""Where and in what arithmetic training runs."""

from __future__ import annotations

import os
import platform

import torch

from ..format.errors import UsageError
from ..runtime.backends import bf16_native


def pick_device(name: str | None = None) -> torch.device:
    """CUDA when present, else Apple MPS, else CPU; ``name`` forces one."""
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise UsageError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if bf16_native() else None
    return None


def hardware_name(device: torch.device) -> str:
    """What ran the steps, for the training summary: a budget in seconds buys threefold more steps
    on one CPU than on another, so a model's PSNR at a budget means little without it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        n = torch.get_num_threads()
        threads = f"{n} thread{'s' if n != 1 else ''}"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return f"{line.split(':', 1)[1].strip()}, {threads}"
        except OSError:
            pass
        return f"{platform.processor() or platform.machine()}, {threads}"
    return device.type

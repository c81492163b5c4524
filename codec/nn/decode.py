"""The torch runtime: the training stack's Decoder as a FrameDecoder (codec.runtime.backends)."""

from __future__ import annotations

import numpy as np
import torch

from ..format.decoder_state import State
from .config import CodecConfig
from .tensors import to_uint8
from .weights import decoder_from_state


class TorchDecoder:
    """Frames from latents with the torch Decoder, channels-last (codec.nn.weights). On the CPU
    each frame goes through on its own: conv kernels give results that differ in the last float
    bits with the batch size, which can flip a pixel after rounding, and on 2 cores batch 1 is
    no slower.

    With ``bf16`` every layer runs in bfloat16 autocast (runtime ``torch-bf16``): on AMX it is
    four times faster at 720p, for pixels about 54 dB from fp32's (docs/experiments.md); the
    trainer measures what that costs each model (``trained["bf16_loss_db"]``)."""

    def __init__(self, cfg: CodecConfig, state: State, what: str = "decoder", device: str | torch.device = "cpu",
                 bf16: bool = False):
        self.cfg = cfg
        self.module = decoder_from_state(state, cfg, what).to(device)
        self.device = torch.device(device)
        self.bf16 = bf16
        self.runtime = "torch-bf16" if bf16 else "torch"

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        # Both modes are per thread: set here, on the thread that decodes.
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            z = torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)).to(self.device)
            if self.device.type == "cpu":
                if not len(z):
                    return np.zeros((0, self.cfg.height, self.cfg.width, 3), np.uint8)
                return np.concatenate([to_uint8(self.module(z[i : i + 1])) for i in range(len(z))])
            return to_uint8(self.module(z))

"""preview.png: a glance at what a trained model does, written beside its weights.

The top row holds source frames spread over the video; the row under it, the same frames as a
viewer sees them: through the shipped decoder, from latents quantized at the trained width.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid

from .. import video
from ..format.atomic import write_bytes_atomic
from ..format.quantizer import Quantizer, spread_indices
from ..nn.model import Autoencoder
from ..nn.tensors import to_tensor
from .data import FrameCache

PREVIEW = "preview.png"
PREVIEW_FRAMES = 4


@torch.no_grad()
def write_preview(path: Path, model: Autoencoder, decoder: torch.nn.Module, data: FrameCache,
                  quantizer: Quantizer | None, device: torch.device) -> None:
    """Write the two-row grid (sources, then reconstructions) as a PNG, atomically."""
    frames = data.stack(spread_indices(len(data), PREVIEW_FRAMES))
    source = to_tensor(frames, device)
    z = model.encoder(source)
    if quantizer is not None:
        z = torch.from_numpy(quantizer.dequantize(quantizer.quantize(z.cpu().numpy()))).to(device)
    decoded = decoder(z).float().clamp(0, 1)
    grid = make_grid(torch.cat([source, decoded]).cpu(), nrow=len(frames), padding=2, pad_value=1.0)
    pixels = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    write_bytes_atomic(path, video.encode_png(pixels))

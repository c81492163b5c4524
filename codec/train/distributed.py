"""What differs when several ranks train one model (torchrun + DDP): who they are, ranges
every rank agrees on, and a forward pass that DDP sees whole."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Callable

import torch
import torch.distributed as dist

from ..nn.model import Autoencoder
from .data import FrameCache
from .evaluate import latent_ranges


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks, from torchrun's environment (0 and 1 alone)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def agree(flags: list[bool], distributed: bool) -> list[bool]:
    """Each flag true on any rank, on every rank: ranks must take the same decisions on the same
    step (stop, restore), or their weights part ways."""
    t = torch.tensor([float(f) for f in flags])
    if distributed:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [v > 0 for v in t.tolist()]


def broadcast(value, distributed: bool):
    """Rank 0's ``value`` on every rank."""
    if not distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shared_ranges(model: Autoencoder, data: FrameCache, device: torch.device, bits: int, distributed: bool,
                  max_frames: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """latent_ranges, widened to the union over DDP ranks so every rank quantizes alike."""
    lo, hi = latent_ranges(model, data, device, bits, max_frames)
    if distributed:
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return lo, hi


def forward_latents(net, model: Autoencoder, x, blocks: bool, distributed: bool, frozen_encoder: bool,
                    latent_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Encode, pass the latents through ``latent_fn`` (fake quantization or noise), decode.
    A frozen encoder runs without autograd, so its backward is skipped. Under DDP the wrapped
    module must run the forward (and every parameter must get a gradient), so ``latent_fn`` is
    applied through a temporary forward hook on the encoder, and with a frozen encoder the loop
    drops the encoder's gradients before the step (and before they count in the clipping norm)."""
    if not distributed:
        with torch.no_grad() if frozen_encoder else nullcontext():
            z = model.encoder(x, blocks)
        return model.decoder(latent_fn(z), blocks)
    handle = model.encoder.register_forward_hook(lambda _m, _i, out: latent_fn(out))
    try:
        return net(x, blocks)
    finally:
        handle.remove()

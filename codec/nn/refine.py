"""Encode-time latent refinement: fit each frame's codes to the shipped decoder.

The encoder is amortized: one small network guesses every frame's latents, and rounding its
guess to the quantizer's grid ignores what the decoder makes of each choice. With the decoder
fixed (the int8 weights a viewer gets, a scene's part applied), gradient steps on each frame's
latents, seen through the quantizer with a straight-through rounding, lower that frame's error
(content-adaptive refinement, as Campos et al. and Yang et al. apply to learned image codecs).

Nothing a viewer receives changes shape: the same ranges, the same code widths, the same
container. Small steps (half a hundredth of a quantizer step each, in Adam's units) move only
the codes whose rounding was a near thing: on the sample +0.33 dB for 2.5 % more chunk bytes,
on the test movie +0.17 dB for 10 % (docs/experiments.md, 2026-12-07). Each frame keeps the
best codes it saw, the encoder's own among them, so refining never raises a frame's error
under its decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import numpy as np
import torch

from ..format.container import part_at, part_spans
from ..format.decoder_state import apply_part, load_state_verified
from ..format.errors import UsageError
from ..format.quantizer import DEFAULT_REFINE_STEPS, Quantizer
from .config import DECODER, CodecConfig, read_model_file
from .model import Decoder
from .part_index import read_part
from .tensors import to_tensor
from .weights import decoder_from_state

# Adam's step size, in quantizer steps. Larger steps rewrite many codes, and the chunks grow
# faster than the PSNR does; smaller ones need more steps for the same gain.
STEP_SIZE = 0.005


def refine_latents(decoder: Decoder, frames: np.ndarray, latents: np.ndarray, quant: Quantizer,
                   steps: int = DEFAULT_REFINE_STEPS) -> np.ndarray:
    """Latents (n, dim) for uint8 ``frames`` (n, H, W, 3) whose codes under ``quant`` decode
    closer to the frames through ``decoder``: ``latents`` (the encoder's) refined by ``steps``
    Adam steps on each frame's squared error, kept within the quantizer's ranges. Each frame
    keeps the latents whose codes decoded closest to it, the encoder's among them."""
    if steps <= 0 or not len(latents):
        return np.asarray(latents, np.float32)
    device = next(decoder.parameters()).device
    lo = torch.from_numpy(quant.lo).to(device)
    step = torch.from_numpy(quant.step).to(device)
    # A constant dimension (no range) always codes 0, as the quantizer codes it.
    top = torch.from_numpy(np.where(quant.hi > quant.lo, quant.levels, 0).astype(np.float32)).to(device)
    target = to_tensor(frames, device)
    # In units of each dimension's own quantizer step: one step size then means the same to a
    # dimension of narrow range as to one of wide range.
    u = torch.minimum(((torch.from_numpy(np.array(latents, np.float32)).to(device) - lo) / step).clamp(min=0), top)
    u.requires_grad_(True)
    best = u.detach().clone()
    best_err = torch.full((len(u),), float("inf"), device=device)
    opt = torch.optim.Adam([u], lr=STEP_SIZE)
    with torch.enable_grad():
        for k in range(steps + 1):
            seen = u + (u.round() - u).detach()  # the codes forward, the identity backward
            err = (decoder(seen * step + lo).clamp(0, 1) - target).square().mean((1, 2, 3))
            with torch.no_grad():
                better = err < best_err
                best[better] = u[better]
                best_err = torch.where(better, err.detach(), best_err)
            if k == steps:
                break
            opt.zero_grad(set_to_none=True)
            err.sum().backward()
            opt.step()
            with torch.no_grad():
                torch.minimum(u.clamp_(min=0), top, out=u)
    # The chosen codes' own values: quantizing a grid point again cannot round it the other way.
    return (best.round() * step + lo).cpu().numpy()


def torch_decoder_at(model_dir: str | Path, cfg: CodecConfig, parts: tuple[tuple[int, str], ...] = (),
                   device: torch.device | str = "cpu") -> Callable[[int], Decoder]:
    """frame -> the torch decoder a viewer decodes that frame with (the base, or the base with
    the frame's scene part applied), built on ``device`` with its weights frozen. Encoding runs
    in frame order, so only the last decoder built is kept."""
    d = Path(model_dir)
    base = load_state_verified(read_model_file(d / DECODER), cfg.decoder_sha256, str(d / DECODER))
    held: dict[str | None, Decoder] = {}

    def decoder_at(frame: int) -> Decoder:
        i = part_at(parts, frame)
        sha = None if i is None or parts[i][1] == cfg.decoder_sha256 else parts[i][1]
        if sha not in held:
            state = base if sha is None else apply_part(base, read_part(d, sha), sha, cfg.decoder_sha256)
            decoder = decoder_from_state(state, cfg, str(d / DECODER)).to(device)
            for p in decoder.parameters():
                p.requires_grad_(False)
            held.clear()
            held[sha] = decoder
        return held[sha]

    return decoder_at


def refine_span(decoder_at: Callable[[int], Decoder], parts: tuple[tuple[int, str], ...], start: int,
                frames: np.ndarray, latents: np.ndarray, quant: Quantizer, steps: int) -> np.ndarray:
    """refine_latents over frames ``start`` .. ``start + len(frames)`` of a movie with ``parts``
    (MovieHeader.parts), each run through the decoder of its own scene (a batch may straddle a
    scene boundary)."""
    out = np.empty((len(latents), latents.shape[1]), np.float32)
    for i, count in part_spans(parts, start, len(frames)):
        span = slice(i, i + count)
        out[span] = refine_latents(decoder_at(start + i), frames[span], latents[span], quant, steps)
    return out


def refine_to_spill(decoder_at: Callable[[int], Decoder], parts: tuple[tuple[int, str], ...],
                    batches: Iterable[np.ndarray], latents: np.ndarray, quant: Quantizer, steps: int,
                    spill: BinaryIO, done: Callable[[int], object] = lambda n: None) -> np.ndarray:
    """``latents`` (n, dim, a memmap of a long movie, say) refined batch by batch against the
    frames in ``batches`` (the same n frames, in order), written to ``spill`` and mapped back, so
    memory stays bounded for any length. ``done(count)`` is called after each batch."""
    n = len(latents)
    s = 0
    for frames in batches:
        if s + len(frames) > n:
            break
        spill.write(refine_span(decoder_at, parts, s, frames, latents[s : s + len(frames)], quant, steps).tobytes())
        s += len(frames)
        done(len(frames))
    if s != n:
        raise UsageError(f"the video gave {s} frames to refine where its latents have {n}")
    spill.flush()
    return np.memmap(spill, dtype=np.float32, mode="r", shape=(n, latents.shape[1]))

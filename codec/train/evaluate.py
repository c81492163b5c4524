"""Measuring a model during and after training: latent ranges, and PSNR with the decoder as
clients will hold it."""

from __future__ import annotations

import copy

import torch
from safetensors.numpy import load as st_load

from ..format.quantizer import Quantizer, latent_range, spread_indices
from ..nn.model import Autoencoder
from ..nn.tensors import to_tensor, to_uint8
from ..nn.weights import int8_state_bytes, load_state_into, shipped_widths
from ..quality import PSNRMeter
from .data import FrameCache


@torch.no_grad()
def latent_ranges(model: Autoencoder, data: FrameCache, device: torch.device, bits: int, max_frames: int = 2000,
                  batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The quantizer's per-dimension range at ``bits`` over the video's latents (evenly
    subsampled when long), by the rule the encoder uses (format.quantizer.latent_range)."""
    idx = spread_indices(len(data), max_frames)
    z = torch.cat([model.encoder(to_tensor(data.stack(idx[s : s + batch]), device)).float().cpu()
                   for s in range(0, len(idx), batch)])
    lo, hi = latent_range(z.numpy(), bits)
    return torch.from_numpy(lo).to(device), torch.from_numpy(hi).to(device)


@torch.no_grad()
def evaluate(model: Autoencoder, data: FrameCache, device: torch.device, bits: int | None,
             decoder: torch.nn.Module | None = None, ranges: tuple[torch.Tensor, torch.Tensor] | None = None,
             max_frames: int = 500, batch: int = 16) -> float:
    """Mean per-frame PSNR on 8-bit RGB, with the decoder as shipped (``decoder``, when the caller
    has built it already) and (if ``bits``) latents quantized over ``ranges`` (latent_ranges'
    result, measured here unless the caller has it)."""
    idx = spread_indices(len(data), max_frames)
    decoder = decoder if decoder is not None else as_shipped(model.decoder)
    quant = None
    if bits:
        lo, hi = ranges if ranges is not None else latent_ranges(model, data, device, bits)
        quant = Quantizer(bits, lo.cpu().numpy(), hi.cpu().numpy())
    meter = PSNRMeter()
    for s in range(0, len(idx), batch):
        ref = data.stack(idx[s : s + batch])
        meter.update(ref, to_uint8(decoder(_latents(model, ref, device, quant))))
    return meter.psnr


def _latents(model: Autoencoder, frames, device: torch.device, quant: Quantizer | None) -> torch.Tensor:
    """The encoder's latents of uint8 ``frames``, through ``quant``'s codes when given."""
    z = model.encoder(to_tensor(frames, device))
    return z if quant is None else torch.from_numpy(quant.dequantize(quant.quantize(z.cpu().numpy()))).to(device)


@torch.no_grad()
def bf16_loss(model: Autoencoder, data: FrameCache, device: torch.device, bits: int, decoder: torch.nn.Module,
              ranges: tuple[torch.Tensor, torch.Tensor], max_frames: int = 64, batch: int = 16) -> float:
    """PSNR the shipped ``decoder`` loses in bfloat16 autocast (as the torch-bf16 runtime runs
    it) against fp32, on the same ``max_frames`` frames with the same quantized latents: a
    paired difference, so a few frames measure it well and a 1080p model pays seconds for it."""
    idx = spread_indices(len(data), max_frames)
    quant = Quantizer(bits, ranges[0].cpu().numpy(), ranges[1].cpu().numpy())
    fp32, bf16 = PSNRMeter(), PSNRMeter()
    for s in range(0, len(idx), batch):
        ref = data.stack(idx[s : s + batch])
        z = _latents(model, ref, device, quant)
        fp32.update(ref, to_uint8(decoder(z)))
        with torch.autocast(device.type, torch.bfloat16):
            bf16.update(ref, to_uint8(decoder(z)))
    return fp32.psnr - bf16.psnr


def as_shipped(decoder: torch.nn.Module, data: bytes | None = None) -> torch.nn.Module:
    """A copy of the decoder that went through the downloadable file's format, as clients load it
    (``data``: that file, when the caller has built it already)."""
    if data is None:
        data = int8_state_bytes(decoder, shipped_widths(decoder))
    dec = copy.deepcopy(decoder).cpu()
    load_state_into(dec, st_load(data), "decoder")
    return dec.to(next(decoder.parameters()).device).eval()

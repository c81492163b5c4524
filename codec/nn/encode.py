"""Offline encode: video -> .lcv, with the model's encoder.

Two passes keep memory bounded for any length: the first runs the encoder and spills float
latents to a temp file (2 KB a frame at 512 dims), the second fits the per-dimension ranges,
quantizes and writes one chunk at a time (``format.container.write_latents``). With a decoder
to refine against, a pass between them reads the video again and refines each batch's latents
under those ranges (``refine``), spilling them to a second file.
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable, Iterable

import numpy as np
import torch

from .. import audio, video
from ..format.audio_info import AUDIO_COPY
from ..format.container import DEFAULT_CHUNK_SECONDS, EncodeResult, chunk_frames_for, write_latents
from ..format.errors import UsageError
from ..format.quantizer import DEFAULT_REFINE_STEPS, Quantizer, check_bits, check_refine_steps
from ..progress import progress_bar
from ..scenes import chapters
from .model import Encoder
from .refine import refine_to_spill, torch_decoder_at
from .tensors import to_tensor


def check_size_fits(width: int, height: int, cfg_width: int, cfg_height: int, what: str) -> None:
    if (width, height) != (cfg_width, cfg_height):
        raise UsageError(f"{what} is {width}x{height} but the model was trained at {cfg_width}x{cfg_height}; "
                         f"pass --size {cfg_width}x{cfg_height} or train a model at this size")


@torch.inference_mode()
def encode_batches(batches: Iterable[np.ndarray], encoder: Encoder, spill: BinaryIO) -> int:
    """Run the encoder over uint8 frame batches, appending float32 latents to ``spill``; returns
    the frame count."""
    device = next(encoder.parameters()).device
    n = 0
    for frames in batches:
        z = encoder(to_tensor(frames, device)).float().cpu().numpy()
        spill.write(np.ascontiguousarray(z, np.float32).tobytes())
        n += len(frames)
    spill.flush()
    return n


def latents_of(batches: Iterable[np.ndarray], encoder: Encoder) -> np.ndarray:
    """float32 latents (n, latent_dim) of uint8 frame batches, in memory (2 kB a frame at 512
    dims): for tools that read a whole movie's codes at once. encode_video keeps them on disk."""
    with tempfile.TemporaryFile() as spill:
        n = encode_batches(batches, encoder, spill)
        spill.seek(0)
        return np.frombuffer(spill.read(), np.float32).reshape(n, encoder.cfg.latent_dim)


def _sound(source: str, frames: int, chunk_frames: int, fps, kbps: float | str | None):
    """The source's sound as (AudioInfo, [(samples, payload)] per latent chunk), or None:
    re-coded to Opus at ``kbps``, or with AUDIO_COPY its own packets kept."""
    if kbps is None:
        return None
    spans = audio.chunk_spans(list(range(0, frames, chunk_frames)), frames, fps)
    if kbps == AUDIO_COPY:
        kept = audio.copy_chunks(source, spans)
        if kept is None:
            return None
        info, payloads = kept
    else:
        pcm = audio.read_audio(source)
        if pcm is None:
            return None
        audio.warn_mismatch(pcm.shape[1] / audio.RATE, spans[-1][1] / audio.RATE)
        info, payloads = audio.encode_chunks(pcm, spans, audio.check_kbps(kbps))
    return info, [(b - a, p) for (a, b), p in zip(spans, payloads)]


def encode_video(source: str, encoder: Encoder, decoder_sha256: str, out: str | os.PathLike,
                 bits: int | None = None, chunk_seconds: float = DEFAULT_CHUNK_SECONDS, batch: int = 16,
                 max_frames: int | None = None, progress: bool = True,
                 parts: Callable[[int], tuple[tuple[int, str], ...]] | None = None,
                 audio_kbps: float | str | None = audio.DEFAULT_KBPS, decoder_dir: str | os.PathLike | None = None,
                 refine_steps: int | None = None) -> EncodeResult:
    """Encode ``source`` at the model's size into a container at ``out`` (written atomically),
    at ``bits`` per latent or, by default, the width the model was trained for. ``parts`` gives
    MovieHeader.parts for the frame count (a model with scene parts: part_index.model_parts).
    The source's sound is coded to Opus at ``audio_kbps``, or kept as it is with AUDIO_COPY
    (None: left out); a source without sound gives a silent movie. With ``decoder_dir`` (the
    model directory whose decoder and parts the viewer will get), each frame's latents are refined
    by ``refine_steps`` steps against them (codec.nn.refine; None: DEFAULT_REFINE_STEPS); 0
    keeps the encoder's own."""
    cfg = encoder.cfg
    bits = check_bits(cfg.trained_bits if bits is None else bits)
    refine_steps = 0 if decoder_dir is None else check_refine_steps(
        DEFAULT_REFINE_STEPS if refine_steps is None else refine_steps)
    info = video.probe(source)
    chunk_frames = chunk_frames_for(info.fps, chunk_seconds)
    total = min(info.frames, max_frames) if max_frames else info.frames
    with tempfile.TemporaryFile() as spill, \
            progress_bar(progress, total=total or None, desc="encoding", unit="frame") as bar:
        batches = video.read_batches(source, (cfg.width, cfg.height), batch, max_frames)
        n = encode_batches((bar.update(len(b)) or b for b in batches), encoder, spill)
        latents = np.memmap(spill, dtype=np.float32, mode="r", shape=(n, cfg.latent_dim))
        try:
            # Scenes from the float latents, while they are at hand: quantized, a cut stands out
            # far less from fast motion (docs/experiments.md).
            cuts, found = chapters(latents, float(info.fps)) if n else ([], [])
            sound = _sound(source, n, chunk_frames, info.fps, audio_kbps) if n else None
            movie_parts = parts(n) if parts else ()
            quant = Quantizer.fit(latents, bits) if n else None
            with tempfile.TemporaryFile() as refined_spill:
                coded = latents
                if refine_steps and n:
                    # The video is read a second time rather than held: memory stays bounded.
                    decoder_at = torch_decoder_at(decoder_dir, cfg, movie_parts, next(encoder.parameters()).device)
                    frames = video.read_batches(source, (cfg.width, cfg.height), batch, n)
                    with progress_bar(progress, total=n, desc="refining", unit="frame") as bar:
                        coded = refine_to_spill(decoder_at, movie_parts, frames, latents, quant, refine_steps,
                                                refined_spill, bar.update)
                try:
                    return write_latents(coded, (cfg.width, cfg.height), info.fps, out, bits, chunk_frames,
                                         decoder_sha256, movie_parts, tuple(cuts),
                                         tuple((c.start, c.shots) for c in found), audio=sound, quantizer=quant)
                finally:
                    del coded
        finally:
            del latents

"""Offline encode (video -> .lcv) and decode (.lcv -> frames), used by the CLI and the server.

Encoding takes two passes so memory stays bounded for any length: the first runs the encoder
and spills float latents to a temp file (2 KB a frame at 512 dims), the second fits the
per-dimension ranges, quantizes and writes one chunk at a time.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from concurrent import futures
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import torch

from . import video
from .container import Container, MovieHeader, write_container
from .errors import ModelError, UsageError
from .metrics import PSNRMeter, to_tensor, to_uint8
from .progress import progress_bar
from .model import CodecConfig, Decoder, Encoder
from .quantize import Quantizer, check_bits, encode_chunk


@dataclass
class EncodeResult:
    path: Path
    frames: int
    bytes: int
    chunk_bytes: int  # chunk records + payloads: what streaming sends
    fps: Fraction
    bits: int


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


def write_movie(latents: np.ndarray, cfg: CodecConfig, fps: Fraction, out: str | os.PathLike, bits: int,
                chunk_frames: int, decoder_sha256: str) -> EncodeResult:
    """Quantize float latents (n, dim) with per-dimension ranges and write a container."""
    check_bits(bits)
    n, dim = latents.shape
    if n == 0:
        raise UsageError("nothing to encode: zero frames")
    quant = Quantizer.fit(latents, bits)  # reads in slices: ``latents`` may be a memmap of a long movie
    header = MovieHeader(cfg.width, cfg.height, fps, n, dim, bits, chunk_frames, decoder_sha256, quant.lo, quant.hi)

    def chunks():
        for s in range(0, n, chunk_frames):
            q = quant.quantize(latents[s : s + chunk_frames])
            yield s, len(q), encode_chunk(q, bits)

    size = write_container(out, header, chunks())
    with Container(out) as c:
        parts = c.breakdown()
    return EncodeResult(Path(out), n, size, parts["chunk_records"] + parts["chunk_payloads"], fps, bits)


# Seconds of video per independently decodable chunk. Each chunk is a zstd frame with its own
# first frame and tables, so longer chunks code smaller: on cockatoo at 4 bits, 2 s chunks take
# 4 % fewer bytes than 1 s (6 % at 2 bits). 2 s is a usual streaming segment; seeking stays
# frame-exact, since only the chunk's latents are undeltaed, not its frames decoded.
DEFAULT_CHUNK_SECONDS = 2.0


def chunk_frames_for(fps: Fraction, chunk_seconds: float) -> int:
    if chunk_seconds <= 0:
        raise UsageError(f"--chunk-seconds must be positive, got {chunk_seconds}")
    return max(1, int(round(float(fps) * chunk_seconds)))


def encode_video(source: str, encoder: Encoder, decoder_sha256: str, out: str | os.PathLike,
                 bits: int | None = None, chunk_seconds: float = DEFAULT_CHUNK_SECONDS, batch: int = 16,
                 max_frames: int | None = None, progress: bool = True) -> EncodeResult:
    """Encode ``source`` at the model's size into a container at ``out`` (written atomically),
    at ``bits`` per latent or, by default, the width the model was trained for."""
    cfg = encoder.cfg
    bits = check_bits(cfg.trained_bits if bits is None else bits)
    info = video.probe(source)
    chunk_frames = chunk_frames_for(info.fps, chunk_seconds)
    total = min(info.frames, max_frames) if max_frames else info.frames
    with tempfile.TemporaryFile() as spill, \
            progress_bar(progress, total=total or None, desc="encoding", unit="frame") as bar:
        batches = video.read_batches(source, (cfg.width, cfg.height), batch, max_frames)
        n = encode_batches((bar.update(len(b)) or b for b in batches), encoder, spill)
        latents = np.memmap(spill, dtype=np.float32, mode="r", shape=(n, cfg.latent_dim))
        try:
            return write_movie(latents, cfg, info.fps, out, bits, chunk_frames, decoder_sha256)
        finally:
            del latents


def check_decoder_matches(header: MovieHeader, decoder: Decoder) -> None:
    cfg = decoder.cfg
    if cfg.decoder_sha256 and header.decoder_sha256 and cfg.decoder_sha256 != header.decoder_sha256:
        raise ModelError(f"this movie needs decoder {header.decoder_sha256[:12]}…, the model has "
                         f"{cfg.decoder_sha256[:12]}…")
    if (cfg.width, cfg.height, cfg.latent_dim) != (header.width, header.height, header.latent_dim):
        raise ModelError(f"the model decodes {cfg.width}x{cfg.height} from {cfg.latent_dim} latents, the movie is "
                         f"{header.width}x{header.height} with {header.latent_dim}")


def decode_latents(decoder: Decoder, latents: np.ndarray, batch: int = 16) -> Iterator[np.ndarray]:
    """uint8 frames (n, H, W, 3) from dequantized latents, yielded ``batch`` at a time.

    On the CPU each frame goes through the network on its own: conv kernels give results that
    differ in the last float bits with the batch size, which can flip a pixel after rounding.
    Frame by frame, a frame decodes to the same bytes however playback was chunked, seeked or
    resumed (and on 2 cores batch 1 is no slower).
    """
    device = next(decoder.parameters()).device
    for s in range(0, len(latents), batch):
        # The consumer takes the frames on its own thread, and may take its time.
        yield _DECODE_THREAD.submit(_decode_batch, decoder, device,
                                    np.ascontiguousarray(latents[s : s + batch])).result()


# Every decoder pass in the process runs on this one thread. Each thread that calls into torch
# gets its own OpenMP team, so ten playback threads (the load test, a test's viewers) ran twenty
# compute threads on two cores. Such runs stalled with two threads busy and no frames moving,
# three times in many: once even with the passes serialized by a lock, since every caller
# still kept its own team. One thread means one team, whoever asks for frames.
_DECODE_THREAD = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentcast-decode")


def _decode_batch(decoder: Decoder, device: torch.device, latents: np.ndarray) -> np.ndarray:
    with torch.inference_mode():  # inference mode is per thread: it is set here, not by the caller
        z = torch.from_numpy(latents).to(device)
        if device.type == "cpu":
            return np.concatenate([to_uint8(decoder(z[i : i + 1])) for i in range(len(z))])
        return to_uint8(decoder(z))


def decode_movie(container: Container, decoder: Decoder, start: int = 0, count: int | None = None,
                 batch: int = 16) -> Iterator[np.ndarray]:
    """Yield batches of decoded frames of a container, from ``start`` for ``count`` frames."""
    check_decoder_matches(container.header, decoder)
    for _first, latents in container.iter_latents(start, count):
        yield from decode_latents(decoder, latents, batch)


def kbps(nbytes: int, frames: int, fps: float) -> float:
    """Bitrate of ``nbytes`` spread over ``frames`` at ``fps``."""
    return 0.0 if frames == 0 else nbytes * 8 / (frames / fps) / 1000


def seconds_to_frame(text: str, fps: float) -> int:
    """``"00:01:30"``, ``"1:30.5"`` or ``"90"`` seconds -> frame number."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise UsageError(f"--from must look like HH:MM:SS, MM:SS or seconds, got {text!r}") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise UsageError(f"--from must look like HH:MM:SS, MM:SS or seconds, got {text!r}")
    secs = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return int(math.floor(secs * fps + 1e-9))


class ReferencePSNR:
    """PSNR of decoded frames against a source video read in step with them, from ``start``."""

    def __init__(self, reference: str, size: tuple[int, int], start: int = 0):
        self.reference = reference
        self._frames = itertools.islice(video.read_frames(reference, size), start, None)
        self._meter = PSNRMeter()

    def update(self, decoded: np.ndarray) -> None:
        ref = list(itertools.islice(self._frames, len(decoded)))
        if len(ref) < len(decoded):
            raise UsageError("the reference video has fewer frames than the movie")
        self._meter.update(np.stack(ref), decoded)

    @property
    def psnr(self) -> float:
        return self._meter.psnr

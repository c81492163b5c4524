"""Latents to frames with a movie's decoders: one dedicated thread for every pass, frame by
frame, so a frame decodes to the same bytes however playback was cut."""

from __future__ import annotations

from concurrent import futures
from typing import Iterator

import numpy as np

from ..format.container import Container, MovieHeader
from ..format.errors import ModelError
from .backends import FrameDecoder
from .scene_decoders import SceneDecoders


def check_decoder_matches(header: MovieHeader, decoder: FrameDecoder | SceneDecoders) -> None:
    cfg = decoder.cfg
    if cfg.decoder_sha256 and header.decoder_sha256 and cfg.decoder_sha256 != header.decoder_sha256:
        raise ModelError(f"this movie needs decoder {header.decoder_sha256[:12]}…, the model has "
                         f"{cfg.decoder_sha256[:12]}…")
    if (cfg.width, cfg.height, cfg.latent_dim) != (header.width, header.height, header.latent_dim):
        raise ModelError(f"the model decodes {cfg.width}x{cfg.height} from {cfg.latent_dim} latents, the movie is "
                         f"{header.width}x{header.height} with {header.latent_dim}")


# Every decoder pass in the process runs on this one thread. Each thread that calls into torch
# gets its own OpenMP team, so ten playback threads (the load test, a test's viewers) ran twenty
# compute threads on two cores. Such runs stalled with two threads busy and no frames moving,
# three times in many: once even with the passes serialized by a lock, since every caller
# still kept its own team. One thread means one team, whoever asks for frames; ONNX Runtime
# sessions, each with its own pool, are serialized on it too.
_DECODE_THREAD = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentcast-decode")


def decode_latents(decoder: FrameDecoder, latents: np.ndarray, batch: int = 16) -> Iterator[np.ndarray]:
    """uint8 frames (n, H, W, 3) from dequantized latents, yielded ``batch`` at a time."""
    for s in range(0, len(latents), batch):
        # The consumer takes the frames on its own thread, and may take its time.
        yield _DECODE_THREAD.submit(decoder, np.ascontiguousarray(latents[s : s + batch])).result()


def decode_frames(decoders: SceneDecoders, first: int, latents: np.ndarray, batch: int = 16
                  ) -> Iterator[np.ndarray]:
    """uint8 frames of latents that start at movie frame ``first``, each scene's with its own
    decoder; the next scene's part is fetched while this one decodes."""
    for offset, count in decoders.spans(first, len(latents)):
        frame = first + offset
        decoder = decoders.decoder_at(frame)
        decoders.prefetch(frame + count)
        yield from decode_latents(decoder, latents[offset : offset + count], batch)


def decode_movie(container: Container, decoders: SceneDecoders, start: int = 0, count: int | None = None,
                 batch: int = 16) -> Iterator[np.ndarray]:
    """Yield batches of decoded frames of a container, from ``start`` for ``count`` frames, with
    the movie's SceneDecoders (scene_decoders.model_decoders)."""
    check_decoder_matches(container.header, decoders)
    if tuple(container.header.parts) != decoders.parts:
        raise ModelError("the movie's decoder parts are not the ones these decoders were given")
    for first, latents in container.iter_latents(start, count):
        yield from decode_frames(decoders, first, latents, batch)

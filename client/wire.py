"""From the messages a server sends to format objects: the movie's side information (quantizer,
decoder parts, scenes), and a streamed chunk's latents trimmed to the frames asked for."""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

import numpy as np

from latentcast.codec import audio
from latentcast.codec.audio import frame_sample
from latentcast.codec.chapters import stored_chapters
from latentcast.codec.format.audio_info import AudioInfo
from latentcast.codec.format.chunks import decode_chunk, frames_in
from latentcast.codec.format.container import MovieHeader, chunk_checksum
from latentcast.codec.format.errors import CorruptContainer, ModelError
from latentcast.codec.format.quantizer import Quantizer
from latentcast.codec.scenes import Chapter
from latentcast.proto import latentcast_pb2 as pb


def movie_quantizer(movie: pb.Movie) -> Quantizer:
    """The quantizer a GetMovie answer describes: from its side information (``header``), checked
    against the catalog fields beside it, or from a server before that field, its float ranges."""
    return movie_side_information(movie).quantizer


class SideInformation(NamedTuple):
    """What a GetMovie answer's side information holds besides the catalog fields."""

    quantizer: Quantizer
    parts: tuple[tuple[int, str], ...]  # MovieHeader.parts: each scene's decoder part
    chapters: list[Chapter]  # the scenes the encoder stored; none from movies or servers before them
    audio: AudioInfo | None = None  # how the sound is coded; None: a silent movie


def movie_side_information(movie: pb.Movie) -> SideInformation:
    """The quantizer, decoder parts and scenes a GetMovie answer describes, from its header
    (checked against the catalog fields beside it), or from a server before that field, its
    float ranges alone."""
    if movie.header:
        try:
            header = MovieHeader.from_bytes(movie.header)
        except CorruptContainer as e:
            raise ModelError(f"the server's side information for {movie.id!r} is damaged ({e})") from None
        if (header.latent_dim, header.bits, header.frames, header.decoder_sha256) != \
                (movie.latent_dim, movie.bits, movie.frames, movie.decoder_sha256):
            raise ModelError(f"the server's side information for {movie.id!r} disagrees with its catalog entry")
        return SideInformation(header.quantizer, header.parts, stored_chapters(header.scenes, header.frames),
                               header.audio)
    if not len(movie.quant_lo) == len(movie.quant_hi) == movie.latent_dim:
        raise ModelError(f"the server sent no quantization ranges for {movie.id!r}")
    lo, hi = np.asarray(movie.quant_lo, np.float32), np.asarray(movie.quant_hi, np.float32)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()):
        raise ModelError(f"the server's quantization ranges for {movie.id!r} are not finite, rising pairs")
    return SideInformation(Quantizer(movie.bits, lo, hi), (), [])


def chunk_sound(movie: pb.Movie, chunk: pb.LatentChunk, info: AudioInfo, start: int, stop: int) -> np.ndarray:
    """The samples (channels, n) that play over ``chunk``'s frames in [start, stop), after its
    audio's sample count and checksum are checked; ModelError for sound that does not fit."""
    fps = Fraction(movie.fps_num, movie.fps_den)
    index = chunk.start_frame // movie.chunk_frames
    first, end = frame_sample(chunk.start_frame, fps), frame_sample(chunk.start_frame + chunk.n_frames, fps)
    if chunk.start_frame != index * movie.chunk_frames or chunk.audio_samples != end - first:
        raise ModelError(f"the sound sent with frames {chunk.start_frame}+{chunk.n_frames} does not cover them")
    if chunk_checksum(index, chunk.audio_samples, chunk.audio) != chunk.audio_checksum:
        raise ModelError(f"the sound sent with frames {chunk.start_frame}+{chunk.n_frames} failed its checksum")
    try:
        pcm = audio.decode_chunk(info, chunk.audio, chunk.audio_samples)
    except CorruptContainer as e:
        raise ModelError(f"the sound sent with frames {chunk.start_frame}+{chunk.n_frames}: {e}") from None
    rows = frames_in(chunk.start_frame, chunk.n_frames, start, stop)
    return audio.over_frames(pcm, chunk.start_frame, chunk.start_frame + rows.start, chunk.start_frame + rows.stop,
                             fps)


def chunk_latents(movie: pb.Movie, chunk: pb.LatentChunk, quantizer: Quantizer, start: int, stop: int) -> np.ndarray:
    """The dequantized latents of ``chunk`` for frames [start, stop) (a chunk decodes whole)."""
    q = decode_chunk(chunk.payload, chunk.n_frames, movie.latent_dim, movie.bits, movie.symbols_packed)
    return quantizer.dequantize(q[frames_in(chunk.start_frame, chunk.n_frames, start, stop)])

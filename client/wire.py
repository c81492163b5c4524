"""From the messages a server sends to format objects: the movie's quantizer, and a streamed
chunk's latents trimmed to the frames asked for."""

from __future__ import annotations

import numpy as np

from latentcast.codec.chapters import stored_chapters
from latentcast.codec.format.chunks import decode_chunk, frames_in
from latentcast.codec.format.container import MovieHeader
from latentcast.codec.format.errors import CorruptContainer, ModelError
from latentcast.codec.format.quantizer import Quantizer
from latentcast.codec.scenes import Chapter
from latentcast.proto import latentcast_pb2 as pb


def movie_quantizer(movie: pb.Movie) -> Quantizer:
    """The quantizer a GetMovie answer describes: from its side information (``header``), checked
    against the catalog fields beside it, or from a server before that field, its float ranges."""
    return movie_side_information(movie)[0]


def movie_side_information(movie: pb.Movie) -> tuple[Quantizer, tuple[tuple[int, str], ...]]:
    """The quantizer and the decoder parts (MovieHeader.parts) a GetMovie answer describes."""
    if movie.header:
        try:
            header = MovieHeader.from_bytes(movie.header)
        except CorruptContainer as e:
            raise ModelError(f"the server's side information for {movie.id!r} is damaged ({e})") from None
        if (header.latent_dim, header.bits, header.frames, header.decoder_sha256) != \
                (movie.latent_dim, movie.bits, movie.frames, movie.decoder_sha256):
            raise ModelError(f"the server's side information for {movie.id!r} disagrees with its catalog entry")
        return header.quantizer, header.parts
    if not len(movie.quant_lo) == len(movie.quant_hi) == movie.latent_dim:
        raise ModelError(f"the server sent no quantization ranges for {movie.id!r}")
    lo, hi = np.asarray(movie.quant_lo, np.float32), np.asarray(movie.quant_hi, np.float32)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()):
        raise ModelError(f"the server's quantization ranges for {movie.id!r} are not finite, rising pairs")
    return Quantizer(movie.bits, lo, hi), ()


def movie_chapters(movie: pb.Movie) -> list[Chapter]:
    """The scenes a GetMovie answer's side information names (none from servers or movies
    before them)."""
    if not movie.header:
        return []
    try:
        header = MovieHeader.from_bytes(movie.header)
    except CorruptContainer as e:
        raise ModelError(f"the server's side information for {movie.id!r} is damaged ({e})") from None
    return stored_chapters(header.scenes, header.frames)


def chunk_latents(movie: pb.Movie, chunk: pb.LatentChunk, quantizer: Quantizer, start: int, stop: int) -> np.ndarray:
    """The dequantized latents of ``chunk`` for frames [start, stop) (a chunk decodes whole)."""
    q = decode_chunk(chunk.payload, chunk.n_frames, movie.latent_dim, movie.bits, movie.symbols_packed)
    return quantizer.dequantize(q[frames_in(chunk.start_frame, chunk.n_frames, start, stop)])

"""Fuzz targets: each takes untrusted bytes and may raise only the project's own errors.

Driven by atheris in fuzz.py (coverage-guided, for the long runs) and by Hypothesis in
test_targets.py (a few hundred inputs each, in every test run).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from fractions import Fraction

import numpy as np
from google.protobuf.message import DecodeError

from latentcast.client.checks import check_fields, check_latent_chunk, check_movie, check_thumbnails
from latentcast.client.wire import chunk_latents, movie_side_information
from latentcast.codec import video
from latentcast.codec.format.chunks import encode_chunk
from latentcast.codec.format.container import Container, MovieHeader, write_container
from latentcast.codec.format.decoder_file import compress_decoder, decompress_decoder, sha256_bytes
from latentcast.codec.format.decoder_state import load_state_verified
from latentcast.codec.format.errors import LatentcastError
from latentcast.codec.format.quantizer import Quantizer
from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.runtime.onnx_graph import decoder_graph
from latentcast.proto import latentcast_pb2 as pb

SCRATCH = tempfile.mkdtemp(prefix="latentcast-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def _valid_container() -> bytes:
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(10, 8)).astype(np.float32)
    quant = Quantizer.fit(lat, 6)
    q = quant.quantize(lat)
    header = MovieHeader(16, 16, Fraction(10), 10, 8, 6, 4, "ab" * 32, quant.lo, quant.hi)
    path = os.path.join(SCRATCH, "seed.lcv")
    write_container(path, header, [(s, len(q[s : s + 4]), encode_chunk(q[s : s + 4], 6)) for s in range(0, 10, 4)])
    with open(path, "rb") as f:
        return f.read()


SEED = _valid_container()


def _write(data: bytes, name: str) -> str:
    path = os.path.join(SCRATCH, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _read_container(data: bytes) -> None:
    try:
        with Container(_write(data, "in.lcv")) as c:
            for i in range(len(c.chunks)):
                c.read_chunk(i)
    except LatentcastError:
        pass


def target_container(data: bytes) -> None:
    _read_container(data)


def target_header(data: bytes) -> None:
    _read_container(data + SEED[len(data):])


def target_y4m(data: bytes) -> None:
    path = _write(b"YUV4MPEG2 " + data, "in.y4m")
    try:
        video.probe(path)
        for _ in video.read_frames(path, max_frames=4):
            pass
    except LatentcastError:
        pass


_CFG = CodecConfig.plan(16, 16, 16)


def target_safetensors(data: bytes) -> None:
    cfg = CodecConfig(**{**_CFG.__dict__, "decoder_sha256": sha256_bytes(data)})
    try:
        decoder_graph(cfg, load_state_verified(data, cfg.decoder_sha256, "fuzz"))
    except LatentcastError:
        pass


def _valid_movie():
    """A GetMovie answer for the seed container, as a server would send it."""
    with Container(_write(SEED, "movie.lcv")) as c:
        h = c.header
        first = pb.LatentChunk(start_frame=0, n_frames=c.chunks[0].n_frames, payload=c.read_payload(0),
                               checksum=c.chunks[0].checksum)
        return pb.Movie(id="abc123", title="seed", width=h.width, height=h.height, fps_num=h.fps.numerator,
                        fps_den=h.fps.denominator, frames=h.frames, duration_s=h.duration,
                        decoder_sha256=h.decoder_sha256, decoder_bytes=1000, latent_dim=h.latent_dim, bits=h.bits,
                        chunk_frames=h.chunk_frames, symbols_packed=h.packed, header=c.side_information()), first


MOVIE, FIRST_CHUNK = _valid_movie()
MOVIE_QUANTIZER = movie_side_information(MOVIE).quantizer


def _through(cls, data: bytes, handle) -> None:
    """``data`` as gRPC would hand it to the client (protobuf itself refuses what it cannot
    parse), then through ``handle``: only the project's own errors may escape."""
    try:
        message = cls.FromString(data)
    except DecodeError:
        return
    try:
        handle(message)
    except LatentcastError:
        pass


def _read_movie(movie: pb.Movie) -> None:
    check_movie(movie)
    movie_side_information(movie)


def _read_latent_chunk(chunk: pb.LatentChunk) -> None:
    check_latent_chunk(chunk, MOVIE, 0, MOVIE.frames)
    chunk_latents(MOVIE, chunk, MOVIE_QUANTIZER, 0, MOVIE.frames)


def _read_decoder_chunk(chunk: pb.DecoderChunk) -> None:
    check_fields(chunk, "decoder chunk")
    decompress_decoder(chunk.data, chunk.decoded_bytes)


def target_movie(data: bytes) -> None:
    """A movie description from a server, through every client handler that reads one."""
    _through(pb.Movie, data, _read_movie)


def target_latent_chunk(data: bytes) -> None:
    """A streamed chunk of the seed movie, through the client's checks and its decoding."""
    _through(pb.LatentChunk, data, _read_latent_chunk)


def target_decoder_chunk(data: bytes) -> None:
    """A decoder download's first chunk: its fields, then the bytes it carries decompressed."""
    _through(pb.DecoderChunk, data, _read_decoder_chunk)


def target_thumbnails(data: bytes) -> None:
    """A GetThumbnails answer through the client's check (track form, bounds, the sprite's sha256)."""
    _through(pb.Thumbnails, data, check_thumbnails)


TARGETS = {"container": target_container, "header": target_header, "y4m": target_y4m,
           "safetensors": target_safetensors, "movie": target_movie, "latent_chunk": target_latent_chunk,
           "decoder_chunk": target_decoder_chunk, "thumbnails": target_thumbnails}


def _decoder_chunk_seed() -> bytes:
    raw = SEED  # any bytes: the chunk's coding is what is fuzzed
    wire = compress_decoder(raw)
    return pb.DecoderChunk(offset=0, total_bytes=len(wire), data=wire, config_json="{}", encoding="zstd",
                           decoded_bytes=len(raw)).SerializeToString()


SEEDS = {"container": SEED, "header": SEED[:200], "y4m": b"W4 H4 F10:1 C444\nFRAME\n" + bytes(48),
         "safetensors": b'\x0e\x00\x00\x00\x00\x00\x00\x00{"a":"b"}     ',
         "movie": MOVIE.SerializeToString(), "latent_chunk": FIRST_CHUNK.SerializeToString(),
         "decoder_chunk": _decoder_chunk_seed(),
         "thumbnails": pb.Thumbnails(vtt="WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nthumbnails.jpg#xywh=0,0,8,8\n",
                                     sprite=b"\xff\xd8\xff", sprite_sha256=sha256_bytes(b"\xff\xd8\xff")
                                     ).SerializeToString()}

"""Every field a server sends, checked before the client uses it.

A server can be wrong, damaged or hostile. Each field of each message the client reads has a
named check here (the FIELDS tables; tests walk the proto's descriptor so that a field added
later fails until it gets one): a form (a sha256 is 64 lowercase hex characters), a bound (sizes,
frame counts, dims, layer widths, fps), or a consistency with the rest of the movie. A message
that breaks one raises UntrustedMessage, one line naming the field, before anything is
allocated from it or written to the cache.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Callable

from latentcast.codec.format.container import MAX_LATENT_DIM
from latentcast.codec.format.errors import LatentcastError
from latentcast.codec.format.quantizer import MAX_BITS, MIN_BITS
from latentcast.codec.nn.config import CodecConfig
from latentcast.proto import latentcast_pb2 as pb


class UntrustedMessage(LatentcastError):
    """A server message that breaks a bound, has a malformed field or disagrees with itself."""


SHA256 = re.compile(r"[0-9a-f]{64}\Z")
MOVIE_ID = re.compile(r"[0-9A-Za-z_.-]{1,64}\Z")
MAX_TITLE = 512
MAX_SIDE = 8192  # pixels, each way
MAX_FPS = 1000
MAX_FPS_TERM = 1 << 20  # numerator and denominator of the frame rate
MAX_FRAMES = 1 << 31  # about 2 years at 30 fps
# A chunk's symbols are allocated as frames x latent_dim bytes before anything else: 16 MiB.
MAX_CHUNK_SYMBOLS = 1 << 24
MAX_DECODER_DOWNLOAD = 256 << 20  # as sent, and as decoded
MAX_CONFIG_JSON = 64 << 10
MAX_HEADER = 8 << 20  # side information: ranges, the parts list, the header JSON
MAX_CHANNELS = 2048  # any one layer's width in a decoder config
MAX_DECODER_WEIGHTS = 64 << 20  # 256 MiB as float32
MAX_KBPS = 1e9
MAX_MOVIES = 100_000
MAX_PAGE_TOKEN = 1024
MAX_AUDIO_CHUNK = 1 << 20  # an audio chunk at 256 kbit/s for 30 s
MAX_SPRITE = 4 << 20  # the seek thumbnails' JPEG: 400 tiles at 160x90 are about 2 MB
MAX_VTT = 256 << 10


def _fail(message: str, field: str, why: str) -> None:
    raise UntrustedMessage(f"the server sent a {message} whose {field} {why}")


def _bounded(lo: float, hi: float) -> Callable[[str, str, object], None]:
    def check(message: str, field: str, value) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
            _fail(message, field, f"is {value!r}, outside {lo:,}..{hi:,}")
    return check


def _matches(pattern: re.Pattern, form: str) -> Callable[[str, str, object], None]:
    def check(message: str, field: str, value) -> None:
        if not pattern.match(value):
            _fail(message, field, f"is not {form} ({printable(value[:80])!r})")
    return check


def _at_most_bytes(limit: int) -> Callable[[str, str, object], None]:
    def check(message: str, field: str, value) -> None:
        if len(value) > limit:
            _fail(message, field, f"holds {len(value)} bytes, over the limit of {limit}")
    return check


def _text(limit: int) -> Callable[[str, str, object], None]:
    def check(message: str, field: str, value) -> None:
        if len(value) > limit:
            _fail(message, field, f"is {len(value)} characters long, over {limit}")
    return check


def _any(message: str, field: str, value) -> None:
    """A flag: every value is one the client handles."""


def _one_of(*allowed: str) -> Callable[[str, str, object], None]:
    def check(message: str, field: str, value) -> None:
        if value not in allowed:
            _fail(message, field, f"is {printable(str(value)[:40])!r}, not one of {allowed}")
    return check


def _checked_elsewhere(what: str) -> Callable[[str, str, object], None]:
    def check(message: str, field: str, value) -> None:
        """Checked where it is used: see ``what``."""
    check.__doc__ = what
    return check


# Each message's fields and their check. The consistency between fields is in check_movie and
# the callers named in the _checked_elsewhere entries.
MOVIE_FIELDS: dict[str, Callable] = {
    "id": _matches(MOVIE_ID, "a movie id"),
    "title": _text(MAX_TITLE),
    "width": _bounded(1, MAX_SIDE),
    "height": _bounded(1, MAX_SIDE),
    "fps_num": _bounded(1, MAX_FPS_TERM),
    "fps_den": _bounded(1, MAX_FPS_TERM),
    "frames": _bounded(1, MAX_FRAMES),
    "duration_s": _bounded(0, MAX_FRAMES),
    "streaming_kbps": _bounded(0, MAX_KBPS),
    "total_kbps": _bounded(0, MAX_KBPS),
    "decoder_sha256": _matches(SHA256, "a sha256"),
    "decoder_bytes": _bounded(1, MAX_DECODER_DOWNLOAD),
    "part_bytes": _bounded(0, MAX_DECODER_DOWNLOAD),
    "audio_kbps": _bounded(0, MAX_KBPS),
    "latent_dim": _bounded(1, MAX_LATENT_DIM),
    "bits": _bounded(MIN_BITS, MAX_BITS),
    "chunk_frames": _bounded(1, MAX_CHUNK_SYMBOLS),
    "quant_lo": _checked_elsewhere("wire.movie_side_information: one finite range per latent dimension"),
    "quant_hi": _checked_elsewhere("wire.movie_side_information: one finite range per latent dimension"),
    "stored_bytes": _bounded(0, 1 << 62),
    "symbols_packed": _any,
    "header": _at_most_bytes(MAX_HEADER),
    "thumbnail_bytes": _bounded(0, MAX_SPRITE + MAX_VTT),
}
THUMBNAIL_FIELDS: dict[str, Callable] = {
    "vtt": _text(MAX_VTT),
    "sprite": _at_most_bytes(MAX_SPRITE),
    "sprite_sha256": _matches(SHA256, "a sha256"),
}
LIST_FIELDS: dict[str, Callable] = {
    "movies": _checked_elsewhere("check_movie, on each, and at most MAX_MOVIES over all pages"),
    "next_page_token": _text(MAX_PAGE_TOKEN),
}
DECODER_CHUNK_FIELDS: dict[str, Callable] = {
    "offset": _bounded(0, MAX_DECODER_DOWNLOAD),
    "total_bytes": _bounded(1, MAX_DECODER_DOWNLOAD),
    "data": _at_most_bytes(MAX_DECODER_DOWNLOAD),
    "config_json": _text(MAX_CONFIG_JSON),
    "encoding": _one_of("", "zstd"),
    "decoded_bytes": _bounded(0, MAX_DECODER_DOWNLOAD),
}
LATENT_CHUNK_FIELDS: dict[str, Callable] = {
    "start_frame": _bounded(0, MAX_FRAMES),
    "n_frames": _bounded(1, MAX_CHUNK_SYMBOLS),
    "payload": _at_most_bytes(MAX_CHUNK_SYMBOLS),
    "checksum": _checked_elsewhere("Session.stream_latents: the chunk checksum over frames and payload"),
    "audio": _at_most_bytes(MAX_AUDIO_CHUNK),
    "audio_samples": _checked_elsewhere("wire.chunk_sound: the samples of the chunk's frames, exactly"),
    "audio_checksum": _checked_elsewhere("wire.chunk_sound: the chunk checksum over its index, samples and bytes"),
}
FIELDS = {pb.Movie: MOVIE_FIELDS, pb.ListMoviesResponse: LIST_FIELDS, pb.DecoderChunk: DECODER_CHUNK_FIELDS,
          pb.LatentChunk: LATENT_CHUNK_FIELDS, pb.Thumbnails: THUMBNAIL_FIELDS}


def check_fields(msg, name: str):
    """``msg`` after every field of it passed its FIELDS check; UntrustedMessage otherwise."""
    for field, check in FIELDS[type(msg)].items():
        check(name, field, getattr(msg, field))
    return msg


def check_movie(movie: pb.Movie) -> pb.Movie:
    """A movie description, field by field and as a whole."""
    check_fields(movie, "movie description")
    fps = movie.fps_num / movie.fps_den
    if fps > MAX_FPS:
        _fail("movie description", "frame rate", f"is {fps:g} fps, over {MAX_FPS}")
    if abs(movie.duration_s - movie.frames / fps) > max(1.0, 0.01 * movie.duration_s):
        _fail("movie description", "duration", f"({movie.duration_s:g} s) disagrees with its frames and frame rate")
    if movie.chunk_frames * movie.latent_dim > MAX_CHUNK_SYMBOLS:
        _fail("movie description", "chunk size", f"({movie.chunk_frames} frames of {movie.latent_dim} values) "
              f"is over {MAX_CHUNK_SYMBOLS} symbols")
    return movie


def check_movie_page(answer: pb.ListMoviesResponse, so_far: int) -> list[pb.Movie]:
    """One page of the movie list, ``so_far`` movies having come before it."""
    check_fields(answer, "movie list")
    if so_far + len(answer.movies) > MAX_MOVIES:
        _fail("movie list", "length", f"is over {MAX_MOVIES} movies")
    if answer.next_page_token and not answer.movies:
        _fail("movie list", "page", "is empty but names a next page")
    return [check_movie(m) for m in answer.movies]


def check_latent_chunk(chunk: pb.LatentChunk, movie: pb.Movie, next_frame: int, stop: int) -> pb.LatentChunk:
    """A streamed chunk, against the movie: at most a chunk's frames, starting at or before the
    next frame wanted and reaching past it, never past the movie's end."""
    check_fields(chunk, "latent chunk")
    if chunk.n_frames > movie.chunk_frames:
        _fail("latent chunk", "frame count", f"({chunk.n_frames}) is over the movie's {movie.chunk_frames} a chunk")
    end = chunk.start_frame + chunk.n_frames
    if end > movie.frames:
        _fail("latent chunk", "frames", f"({chunk.start_frame}+{chunk.n_frames}) run past the movie's "
              f"{movie.frames}")
    if chunk.start_frame > next_frame or end <= next_frame:
        _fail("latent chunk", "frames", f"({chunk.start_frame}+{chunk.n_frames}) do not hold frame {next_frame}, "
              f"the next one asked for")
    return chunk


def check_thumbnails(answer: pb.Thumbnails) -> pb.Thumbnails:
    """Seek thumbnails: bounded, a WebVTT track, and a sprite that hashes to the sha256 beside it."""
    import hashlib

    check_fields(answer, "thumbnails answer")
    if not answer.vtt.startswith("WEBVTT"):
        _fail("thumbnails answer", "vtt", "is not a WebVTT track")
    if hashlib.sha256(answer.sprite).hexdigest() != answer.sprite_sha256:
        _fail("thumbnails answer", "sprite", "does not hash to its sprite_sha256")
    return answer


def check_decoder_config(cfg: CodecConfig) -> CodecConfig:
    """A decoder config from the server: widths and sizes a decoder can be built from on a viewer's
    machine, with a bounded weight count."""
    widths = (cfg.latent_channels, cfg.stem_channels, *cfg.decoder_channels, *cfg.encoder_channels)
    if any(not 1 <= w <= MAX_CHANNELS for w in widths):
        _fail("decoder config", "layer widths", f"{widths} are not all within 1..{MAX_CHANNELS}")
    if not cfg.strides or any(not 1 <= s <= 16 for s in cfg.strides) or len(cfg.strides) > 8:
        _fail("decoder config", "strides", f"{cfg.strides} are not 1 to 8 factors of 1..16")
    if not (1 <= cfg.grid[0] <= 64 and 1 <= cfg.grid[1] <= 64):
        _fail("decoder config", "latent grid", f"{cfg.grid} is not within 64x64")
    if cfg.latent_channels * cfg.grid[0] * cfg.grid[1] != cfg.latent_dim:
        _fail("decoder config", "latent grid", f"{cfg.grid} x {cfg.latent_channels} does not hold {cfg.latent_dim}")
    if not (1 <= cfg.width <= MAX_SIDE and 1 <= cfg.height <= MAX_SIDE):
        _fail("decoder config", "frame size", f"{cfg.width}x{cfg.height} is over {MAX_SIDE}")
    canvas = cfg.canvas
    if canvas[0] < cfg.height or canvas[1] < cfg.width or canvas[0] * canvas[1] > 4 * MAX_SIDE * MAX_SIDE:
        _fail("decoder config", "canvas", f"{canvas} does not fit the {cfg.width}x{cfg.height} frame")
    if cfg.decoder_parameters > MAX_DECODER_WEIGHTS:
        _fail("decoder config", "weight count", f"{cfg.decoder_parameters:,} is over {MAX_DECODER_WEIGHTS:,}")
    return cfg


def printable(text: str) -> str:
    """``text`` with control and format characters (terminal escapes, bidi overrides) escaped, so a
    server's text cannot drive the viewer's terminal."""
    return "".join(c if unicodedata.category(c)[0] != "C" or c == " " else c.encode("unicode_escape").decode()
                   for c in text)

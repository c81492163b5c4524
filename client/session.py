"""The client's side of the wire: channel, auth, deadlines, the decoder cache, and streams that
resume after the server goes away.

Nothing received is unpickled: the decoder arrives as safetensors bytes plus a JSON config,
and it is loaded only after its sha256 matches the one the catalog names.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import grpc

from latentcast.client.checks import (
    SHA256,
    UntrustedMessage,
    check_decoder_config,
    check_fields,
    check_latent_chunk,
    check_movie,
    check_movie_page,
    check_thumbnails,
    printable,
)
from latentcast.codec.format.address import is_loopback
from latentcast.codec.format.atomic import write_bytes_atomic, write_text_atomic
from latentcast.codec.format.container import chunk_checksum
from latentcast.codec.format.decoder_file import decompress_decoder, sha256_bytes
from latentcast.codec.format.errors import LatentcastError, ModelError, UsageError
from latentcast.codec.nn.config import CodecConfig
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
             grpc.StatusCode.ABORTED}


def retryable(code: grpc.StatusCode, details: str) -> bool:
    """Whether asking again may help: not when RESOURCE_EXHAUSTED is this client's own receive
    cap refusing a message too large, which the same request would only meet again."""
    return code in RETRYABLE and not (code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details)


def jittered(delay: float) -> float:
    """``delay`` spread over [delay/2, delay): viewers cut off together by a restart come back
    spread out instead of all at once."""
    return delay * (0.5 + 0.5 * random.random())


def _check_sha_form(sha: str) -> None:
    """A decoder's name comes from the server: it must have a sha256's form before it names a file
    or a request."""
    if not SHA256.match(sha):
        raise UntrustedMessage(f"the server named a decoder {printable(sha[:80])!r}, which is not a sha256")


class ServerError(LatentcastError):
    """The server answered with an error status; ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, details: str):
        self.code = code
        self.details = details
        super().__init__(f"{details} ({code.name})")


def default_cache_dir() -> Path:
    base = os.environ.get("LATENTCAST_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                              os.path.expanduser("~/.cache"), "latentcast")
    return Path(base) / "decoders"


class _EndedEarly(Exception):
    pass


@dataclass
class Received:
    """Bytes actually received, by kind (serialized message sizes)."""

    latent_bytes: int = 0
    audio_bytes: int = 0  # the sound, counted apart from the picture's bytes
    decoder_bytes: int = 0
    chunks: int = 0
    reconnects: int = 0
    first_chunk_s: float | None = None


@dataclass
class Session:
    address: str
    token: str | None = None
    root_certificates: bytes | None = None
    timeout_s: float = 10.0
    retry_s: float = 30.0  # how long to keep reconnecting after the server goes away
    cache_dir: Path = field(default_factory=default_cache_dir)
    received: Received = field(default_factory=Received)
    insecure: bool = False  # allow a token over plaintext to an address off loopback
    client_certificate: bytes | None = None  # mTLS: this client's certificate chain and key (PEM)
    client_key: bytes | None = None

    def __post_init__(self):
        if self.token is not None and self.root_certificates is None and not self.insecure \
                and not is_loopback(self.address):
            raise UsageError(f"refusing to send a token in the clear to {self.address}: connect with TLS "
                             "(--tls-ca), or give --insecure on a trusted network")
        options = [("grpc.max_receive_message_length", 8 * 1024 * 1024),
                   ("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0)]
        if (self.client_certificate is None) != (self.client_key is None):
            raise UsageError("a client certificate and its key go together")
        if self.client_certificate is not None and self.root_certificates is None:
            raise UsageError("a client certificate is for TLS: give the server's CA too (--tls-ca)")
        if self.root_certificates is not None:
            creds = grpc.ssl_channel_credentials(self.root_certificates, private_key=self.client_key,
                                                 certificate_chain=self.client_certificate)
            self.channel = grpc.secure_channel(self.address, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(self.address, options=options)
        self.stub = pb_grpc.LatentcastStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def _metadata(self):
        return (("authorization", f"Bearer {self.token}"),) if self.token is not None else ()

    def _call(self, fn: Callable, request, timeout: float | None = None):
        try:
            return fn(request, timeout=timeout or self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise ServerError(e.code(), e.details() or "") from None

    def _with_retry(self, fn: Callable, request):
        """Unary calls: retry while the server is unreachable, up to ``retry_s``."""
        return self._retrying(lambda: self._call(fn, request))

    def _retrying(self, attempt: Callable):
        """``attempt()``, again with jittered backoff while it fails with a retryable ServerError,
        for up to ``retry_s``."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.1
        while True:
            try:
                return attempt()
            except ServerError as e:
                if not retryable(e.code, e.details) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(jittered(delay))
                delay = min(delay * 2, 2.0)

    # -- catalog -------------------------------------------------------------------------------

    def list_movies(self) -> list[pb.Movie]:
        """The server's movies, page by page, each description checked (client.checks)."""
        movies: list[pb.Movie] = []
        token = ""
        while True:
            page = self._with_retry(self.stub.ListMovies, pb.ListMoviesRequest(page_token=token))
            movies += check_movie_page(page, len(movies))
            if not page.next_page_token:
                return movies
            token = page.next_page_token

    def get_movie(self, movie: str) -> pb.Movie:
        """One movie's description, checked (client.checks)."""
        return check_movie(self._with_retry(self.stub.GetMovie, pb.GetMovieRequest(movie=movie)))

    def thumbnails(self, movie: str) -> pb.Thumbnails:
        """A movie's seek thumbnails (WebVTT track and JPEG sprite), checked (client.checks)."""
        return check_thumbnails(self._with_retry(self.stub.GetThumbnails, pb.GetThumbnailsRequest(movie=movie)))

    # -- decoder -------------------------------------------------------------------------------

    def decoders(self, movie: pb.Movie, parts: tuple[tuple[int, str], ...] = (), keep: int = 2,
                 runtime: str = "auto"):
        """The movie's SceneDecoders for ``runtime`` (codec.runtime.backends): its base decoder
        from the cache if present and intact, else downloaded once, and its scene parts fetched
        (and cached) as playback reaches them. Returns (decoders, whether the base was downloaded now)."""
        from latentcast.codec.runtime.scene_decoders import SceneDecoders

        data, config, downloaded = self._base_decoder(movie.decoder_sha256)
        return SceneDecoders(data, config, parts, fetch=self.part_bytes, keep=keep,
                             what=f"decoder {movie.decoder_sha256[:12]}…", runtime=runtime), downloaded

    def _base_decoder(self, sha: str) -> tuple[bytes, CodecConfig, bool]:
        """The base decoder's verified bytes and config, from the cache or the server; only
        bytes that hash to ``sha`` under a config that names it are kept or used."""
        path = self._cache_path(sha)
        cfg_path = path.with_suffix(".json")
        if path.exists() and cfg_path.exists():
            try:
                data = path.read_bytes()
                return data, self._checked_config(data, cfg_path.read_text(), sha), False
            except ModelError:
                log.warning("cached decoder %s… is damaged; downloading again", sha[:12])
        data, config = self._download_decoder(sha)
        cfg = self._checked_config(data, config, sha)  # verified before anything is cached
        write_text_atomic(cfg_path, config)
        write_bytes_atomic(path, data)
        return data, cfg, True

    def part_bytes(self, sha: str) -> bytes:
        """A decoder part's bytes, from the cache or the server, checked against ``sha``."""
        path = self._cache_path(sha)
        if path.exists():
            data = path.read_bytes()
            if sha256_bytes(data) == sha:
                return data
            log.warning("cached decoder part %s… is damaged; downloading again", sha[:12])
        data = self._download_checked(sha, "decoder part")
        write_bytes_atomic(path, data)
        return data

    def fetch_decoder(self, sha: str) -> bytes:
        """The decoder's bytes fetched afresh from the server, past the cache (retried while the
        server is away), checked against ``sha``: what a load test's decoder download measures."""
        _check_sha_form(sha)
        return self._download_checked(sha, "decoder")

    def _download_checked(self, sha: str, what: str) -> bytes:
        data, _config = self._download_decoder(sha, with_config=False)
        if sha256_bytes(data) != sha:
            raise ModelError(f"{what} {sha[:12]}… as received: sha256 mismatch")
        return data

    def _cache_path(self, sha: str) -> Path:
        """Where a decoder lives in the cache; the name comes from the server, so only a sha256's
        form may make it (no empty, relative or foreign names)."""
        _check_sha_form(sha)
        return self.cache_dir / f"{sha}.safetensors"

    def _download_decoder(self, sha: str, with_config: bool = True) -> tuple[bytes, str]:
        """The decoder's bytes as safetensors, and its config JSON (gRPC sends it either way).
        A server that is away is waited for (``retry_s``): a scene's part falls due mid-play,
        where giving up would end a play that its stream would have resumed."""
        return self._retrying(lambda: self._download_decoder_once(sha))

    def _download_decoder_once(self, sha: str) -> tuple[bytes, str]:
        parts, config, total, encoding, decoded, received = [], "", None, "", 0, 0
        try:
            for chunk in self.stub.GetDecoder(pb.GetDecoderRequest(sha256=sha), timeout=max(60.0, self.timeout_s),
                                              metadata=self._metadata):
                check_fields(chunk, "decoder chunk")
                self.received.decoder_bytes += chunk.ByteSize()
                if chunk.offset == 0:
                    config, total = chunk.config_json, chunk.total_bytes
                    encoding, decoded = chunk.encoding, chunk.decoded_bytes
                if total is None or chunk.offset + len(chunk.data) > total:
                    raise ModelError("decoder download is longer than announced")
                if chunk.offset != received:
                    raise ModelError("decoder download arrived out of order")
                parts.append(chunk.data)
                received += len(chunk.data)
        except grpc.RpcError as e:
            raise ServerError(e.code(), e.details() or "") from None
        data = b"".join(parts)
        if total is None or len(data) != total:
            raise ModelError(f"decoder download incomplete ({len(data)} of {total} bytes)")
        if encoding == "zstd":
            data = decompress_decoder(data, decoded)
        return data, config

    @staticmethod
    def _checked_config(data: bytes, config: str, sha: str) -> CodecConfig:
        """The config, once it names ``sha`` (the catalog's) and the bytes hash to it."""
        try:
            cfg = check_decoder_config(CodecConfig.from_json(config))
        except (ValueError, TypeError) as e:
            raise ModelError(f"decoder config is malformed ({printable(str(e)[:200])})") from None
        if cfg.decoder_sha256 != sha:
            raise ModelError("decoder config names another decoder")
        if sha256_bytes(data) != sha:
            raise ModelError(f"decoder {sha[:12]}… as received: sha256 mismatch")
        return cfg

    # -- latents -------------------------------------------------------------------------------

    @staticmethod
    def _verified_chunk(chunk: pb.LatentChunk, movie: pb.Movie, next_frame: int, stop: int) -> pb.LatentChunk:
        """``chunk`` once its bounds fit the movie and the request and its checksum holds (the
        sound's is checked where it is decoded: wire.chunk_sound)."""
        check_latent_chunk(chunk, movie, next_frame, stop)  # bounds first: the checksum packs them
        if chunk_checksum(chunk.start_frame, chunk.n_frames, chunk.payload) != chunk.checksum:
            raise ServerError(grpc.StatusCode.DATA_LOSS,
                              f"chunk for frames {chunk.start_frame}+{chunk.n_frames} failed its checksum")
        return chunk

    def stream_latents(self, movie: pb.Movie, start: int, stop: int) -> Iterator[pb.LatentChunk]:
        """Verified chunks of ``movie`` (as get_movie described it) covering frames [start, stop).
        If the server goes away, reconnect with backoff and ask again from the first frame not
        yet delivered, so each frame comes once."""
        next_frame = start
        deadline = None
        delay = 0.1
        t0 = time.monotonic()
        while next_frame < stop:
            call = self.stub.StreamLatents(
                pb.StreamLatentsRequest(movie=movie.id, start_frame=next_frame, frame_count=stop - next_frame),
                metadata=self._metadata, timeout=None)
            try:
                for chunk in call:
                    if self.received.first_chunk_s is None:
                        self.received.first_chunk_s = time.monotonic() - t0
                    sound = pb.LatentChunk(audio=chunk.audio, audio_samples=chunk.audio_samples,
                                           audio_checksum=chunk.audio_checksum).ByteSize()
                    self.received.latent_bytes += chunk.ByteSize() - sound
                    self.received.audio_bytes += sound
                    self.received.chunks += 1
                    self._verified_chunk(chunk, movie, next_frame, stop)
                    end = chunk.start_frame + chunk.n_frames
                    deadline, delay = None, 0.1  # progress: the retry window starts over
                    yield chunk
                    next_frame = min(end, stop)
                    if next_frame >= stop:
                        return
                # The stream ended before `stop` (a server shutting down): ask again for the rest.
                raise _EndedEarly()
            except (grpc.RpcError, _EndedEarly) as e:
                code = e.code() if isinstance(e, grpc.RpcError) else grpc.StatusCode.UNAVAILABLE
                details = (e.details() or "") if isinstance(e, grpc.RpcError) else ""
                if not (retryable(code, details) or code == grpc.StatusCode.CANCELLED):
                    raise ServerError(code, details) from None
                deadline = deadline or time.monotonic() + self.retry_s
                if time.monotonic() + delay > deadline:
                    raise ServerError(code, f"server unreachable for {self.retry_s:.0f} s") from None
                log.info("stream interrupted at frame %d (%s); reconnecting", next_frame, code.name)
                self.received.reconnects += 1
                time.sleep(jittered(delay))
                delay = min(delay * 2, 2.0)
            finally:
                call.cancel()

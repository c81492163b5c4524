"""The client over HTTP (server/http_gateway.py): the same catalog, decoder cache, checks and
resume as the gRPC Session, with each chunk fetched from its own cacheable URL.

A server URL (``http://host:port`` or ``https://...``) in place of a gRPC address picks it.
Everything received is put back into the protobuf messages the gRPC side gets and goes
through the same checks (client.checks), so a lie over HTTP meets the same refusal.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import quote, urlsplit

import grpc
from google.protobuf import json_format

from latentcast.client.checks import (
    MAX_AUDIO_CHUNK,
    MAX_SPRITE,
    MAX_VTT,
    UntrustedMessage,
    check_movie,
    check_movie_page,
    check_thumbnails,
    printable,
)
from latentcast.codec.format.address import is_loopback
from latentcast.codec.format.decoder_file import decompress_decoder
from latentcast.codec.format.errors import ModelError, UsageError
from latentcast.proto import latentcast_pb2 as pb

from .session import ServerError, Session

log = logging.getLogger(__name__)

# HTTP statuses as the gRPC codes the rest of the client acts on (retry, message, exit).
STATUS_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
                404: grpc.StatusCode.NOT_FOUND, 416: grpc.StatusCode.OUT_OF_RANGE,
                429: grpc.StatusCode.RESOURCE_EXHAUSTED, 500: grpc.StatusCode.DATA_LOSS,
                503: grpc.StatusCode.UNAVAILABLE, 502: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.UNAVAILABLE}
MAX_JSON = 8 << 20  # the gRPC side's receive cap
MAX_CHUNK = 8 << 20
MAX_DECODER = 1 << 30  # client.checks bounds the announced size the same way


def is_http_url(address: str) -> bool:
    return address.startswith(("http://", "https://"))


@dataclass
class _Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


@dataclass
class HttpSession(Session):
    def __post_init__(self):
        url = urlsplit(self.address)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise UsageError(f"{self.address!r} is not an http:// or https:// server URL")
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname, url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        if self.token is not None and not self._https and not self.insecure and not is_loopback(self._host):
            raise UsageError(f"refusing to send a token in the clear to {self.address}: use https://, or give "
                             "--insecure on a trusted network")
        self._tls = None
        if self._https:
            self._tls = ssl.create_default_context(cadata=self.root_certificates.decode()
                                                   if self.root_certificates else None)
            if self.client_certificate:
                raise UsageError("client certificates are for gRPC; over HTTP a token identifies the viewer")
        self._local = threading.local()  # one keep-alive connection per thread (stream, parts, catalog)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout_s, context=self._tls) \
                if self._https else http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def _get(self, path: str, limit: int, private: bool = True) -> _Response:
        """One GET, its body read up to ``limit`` bytes; ServerError for an error status or a
        server that cannot be reached (UNAVAILABLE, which the callers retry)."""
        headers = {"Authorization": f"Bearer {self.token}"} if private and self.token is not None else {}
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more, fresh
            conn = self._connection()
            try:
                conn.request("GET", self._prefix + path, headers=headers)
                r = conn.getresponse()
                length = r.getheader("Content-Length")
                if length is not None and (not length.isdigit() or int(length) > limit):
                    conn.close()
                    raise UntrustedMessage(f"the server announced {printable(length[:20])} bytes for {path[:80]}, "
                                           f"more than the {limit:,} allowed")
                body = r.read(limit + 1)
                if len(body) > limit:
                    conn.close()
                    raise UntrustedMessage(f"the server sent more than {limit:,} bytes for {path[:80]}")
                break
            except (ConnectionError, http.client.HTTPException, TimeoutError, OSError) as e:
                conn.close()
                self._local.conn = None
                if attempt:
                    raise ServerError(grpc.StatusCode.UNAVAILABLE, f"cannot reach {self.address}: {e}") from None
        if r.status >= 400:
            raise ServerError(STATUS_CODES.get(r.status, grpc.StatusCode.UNKNOWN), self._error_text(r.status, body))
        if r.status != 200:
            raise UntrustedMessage(f"the server answered {r.status} to a plain GET")
        return _Response(r.status, r.headers, body)

    @staticmethod
    def _error_text(status: int, body: bytes) -> str:
        try:
            return printable(str(json.loads(body)["error"])[:300])
        except (ValueError, KeyError, TypeError):
            return f"HTTP {status}"

    def _message(self, path: str, message):
        body = self._retrying(lambda: self._get(path, MAX_JSON)).body
        try:
            return json_format.Parse(body, message)
        except json_format.ParseError as e:
            raise UntrustedMessage(f"the server's answer to {path[:80]} is not a {type(message).__name__} "
                                   f"({printable(str(e)[:200])})") from None

    # -- catalog -------------------------------------------------------------------------------

    def list_movies(self) -> list[pb.Movie]:
        movies: list[pb.Movie] = []
        token = ""
        while True:
            page = self._message("/v1/movies" + (f"?page_token={quote(token)}" if token else ""),
                                 pb.ListMoviesResponse())
            movies += check_movie_page(page, len(movies))
            if not page.next_page_token:
                return movies
            token = page.next_page_token

    def get_movie(self, movie: str) -> pb.Movie:
        return check_movie(self._message(f"/v1/movies/{quote(movie, safe='')}", pb.Movie()))

    def thumbnails(self, movie: str) -> pb.Thumbnails:
        """The seek thumbnails from their two URLs, put back into the gRPC answer and checked."""
        base = f"/v1/movies/{quote(movie, safe='')}/thumbnails"
        vtt = self._retrying(lambda: self._get(base + ".vtt", MAX_VTT))
        sprite = self._retrying(lambda: self._get(base + ".jpg", MAX_SPRITE))
        return check_thumbnails(pb.Thumbnails(vtt=vtt.body.decode("utf-8", "replace"), sprite=sprite.body,
                                              sprite_sha256=sprite.headers.get("ETag", "").strip('"')))

    # -- decoder -------------------------------------------------------------------------------

    def _download_decoder(self, sha: str, with_config: bool = True) -> tuple[bytes, str]:
        r = self._retrying(lambda: self._get(f"/v1/decoders/{sha}", MAX_DECODER))
        self.received.decoder_bytes += len(r.body)
        decoded = r.headers.get("X-Latentcast-Decoded-Bytes", "")
        if r.headers.get("X-Latentcast-Encoding") != "zstd" or not decoded.isdigit() or int(decoded) > MAX_DECODER:
            raise ModelError(f"decoder {sha[:12]}…: the server did not say how it is coded")
        data = decompress_decoder(r.body, int(decoded))
        config = ""
        if with_config:  # a base's; a part has none of its own
            config = self._retrying(lambda: self._get(f"/v1/decoders/{sha}/config.json", MAX_JSON)).body.decode(
                "utf-8", "replace")
        return data, config

    # -- latents -------------------------------------------------------------------------------

    def stream_latents(self, movie: pb.Movie, start: int, stop: int) -> Iterator[pb.LatentChunk]:
        """Verified chunks covering frames [start, stop), one GET each. Chunks are cut every
        ``chunk_frames`` frames, so frame f is in chunk f // chunk_frames; a failed GET is asked
        again, with backoff, for ``retry_s`` after the last progress."""
        t0 = time.monotonic()
        next_frame = start
        while next_frame < stop:
            index = next_frame // movie.chunk_frames
            r = self._retrying(lambda: self._get(f"/v1/movies/{quote(movie.id, safe='')}/chunks/{index}", MAX_CHUNK,
                                                 private=False))
            if self.received.first_chunk_s is None:
                self.received.first_chunk_s = time.monotonic() - t0
            try:
                chunk = pb.LatentChunk(start_frame=int(r.headers.get("X-Latentcast-Start-Frame", "")),
                                       n_frames=int(r.headers.get("X-Latentcast-Frames", "")), payload=r.body,
                                       checksum=int(r.headers.get("X-Latentcast-Checksum", "")))
            except ValueError:
                raise UntrustedMessage(f"chunk {index} came without its frame range and checksum") from None
            self.received.latent_bytes += chunk.ByteSize()
            self.received.chunks += 1
            self._verified_chunk(chunk, movie, next_frame, stop)  # before the sound is asked for
            if movie.audio_kbps > 0:  # the sound over these frames, from its own cacheable URL
                sound = self._retrying(lambda: self._get(f"/v1/movies/{quote(movie.id, safe='')}/audio/{index}",
                                                         MAX_AUDIO_CHUNK, private=False))
                try:
                    chunk.audio_samples = int(sound.headers.get("X-Latentcast-Samples", ""))
                    chunk.audio_checksum = int(sound.headers.get("X-Latentcast-Checksum", ""))
                except ValueError:
                    raise UntrustedMessage(f"audio chunk {index} came without its samples and checksum") from None
                chunk.audio = sound.body
                self.received.audio_bytes += len(sound.body)
            yield chunk
            next_frame = min(chunk.start_frame + chunk.n_frames, stop)

"""The gRPC servicer: catalog, decoder download, latent stream.

It holds no codec maths: chunks go out exactly as the container stores them, after their
checksum is verified, so a damaged chunk is answered with DATA_LOSS instead of garbage.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass

import grpc

from latentcast.codec.format.container import Container
from latentcast.codec.format.errors import CorruptContainer
from latentcast.proto import latentcast_pb2 as pb
from latentcast.proto import latentcast_pb2_grpc as pb_grpc

from .decoder_cache import DecoderCache
from .slots import Refused, Slots
from .store import NotFound, Store, StoreError

log = logging.getLogger(__name__)

DECODER_CHUNK = 1 << 20  # the proto promises chunks of at most 1 MiB


@dataclass
class Limits:
    """Per-request bounds; past them a request fails at once instead of slowing everyone."""

    max_frames_per_request: int = 10_000_000  # about 46 hours at 60 fps
    max_request_text: int = 1024
    # A stream may run at most this many seconds of video ahead of real time (0: as fast as the
    # network allows). Pacing keeps a viewer who stops watching from pulling the whole movie.
    max_lead_s: float = 0.0
    max_streams: int = 128  # concurrent latent streams in total
    max_streams_per_client: int = 32  # per bearer token (or per peer address when no token is used)
    max_stream_seconds: float = 6 * 3600.0  # longer than any movie played in real time
    # A send that a client has not taken for this long (it stopped reading) is cancelled, and its
    # worker and slot come back; the client asks again from the next frame it lacks. 0: never.
    stall_s: float = 30.0


DEFAULT_PAGE, MAX_PAGE = 100, 1000


def page_token(rec) -> str:
    """An opaque token naming where a page of ListMovies ended."""
    return base64.urlsafe_b64encode(json.dumps([rec.created, rec.id]).encode()).decode()


def parse_page_token(token: str) -> tuple[float, str]:
    """(created, id) from page_token's output; ValueError for anything else."""
    created, movie_id = json.loads(base64.urlsafe_b64decode(token.encode()))
    if not isinstance(created, (int, float)) or not isinstance(movie_id, str) or len(movie_id) > 64:
        raise ValueError("not a page token")
    return float(created), movie_id


def movie_message(rec, **extra) -> pb.Movie:
    """A catalog record as the Movie message ListMovies sends (no side information)."""
    return pb.Movie(
        id=rec.id, title=rec.title, width=rec.width, height=rec.height, fps_num=rec.fps_num,
        fps_den=rec.fps_den, frames=rec.frames, duration_s=rec.duration, streaming_kbps=rec.streaming_kbps,
        total_kbps=rec.total_kbps, part_bytes=rec.part_bytes, audio_kbps=rec.audio_kbps,
        decoder_sha256=rec.decoder_sha256, decoder_bytes=rec.decoder_bytes, latent_dim=rec.latent_dim,
        bits=rec.bits, chunk_frames=rec.chunk_frames, stored_bytes=rec.stored_bytes,
        thumbnail_bytes=rec.thumbnail_bytes, **extra)


def describe_movie(store: Store, rec) -> pb.Movie:
    """GetMovie's answer: the record and the movie's side information, its header as the file
    stores it, quantization ranges inside. CorruptContainer when the header is damaged."""
    header, side = store.movie_header(rec.id)
    return movie_message(rec, header=side, symbols_packed=header.packed)


class LatentcastServicer(pb_grpc.LatentcastServicer):
    def __init__(self, store: Store, limits: Limits | None = None, keyed_by_token: bool = False):
        self.store = store
        self.limits = limits or Limits()
        # With tokens, a client is its token; without, any caller could mint a new "client" per
        # call with a random authorization header, so a client is its address alone.
        self.keyed_by_token = keyed_by_token
        self.slots = Slots(self.limits.max_streams, self.limits.max_streams_per_client)
        self._lock = threading.Lock()
        self.decoders = DecoderCache(store)
        # Sends waiting on their client: a sync stream is suspended at its yield until gRPC has
        # handed the message over, which a client that stopped reading never lets happen.
        self._sending: dict[object, tuple[float, object]] = {}
        self._closed = threading.Event()
        if self.limits.stall_s > 0:
            threading.Thread(target=self._cancel_stalled, name="latentcast-stall-watch", daemon=True).start()

    def close(self) -> None:
        """Stop the stall watch (the server is stopping)."""
        self._closed.set()

    def _cancel_stalled(self) -> None:
        period = min(1.0, self.limits.stall_s / 4)
        while not self._closed.wait(period):
            now = time.monotonic()
            with self._lock:
                stalled = [ctx for since, ctx in self._sending.values() if now - since > self.limits.stall_s]
            for ctx in stalled:
                ctx.cancel()

    @contextlib.contextmanager
    def _send_watched(self, context):
        """Around a yield: cancel the call if the client takes longer than stall_s to take it."""
        key = object()
        with self._lock:
            self._sending[key] = (time.monotonic(), context)
        try:
            yield
        finally:
            with self._lock:
                self._sending.pop(key, None)

    # -- helpers -------------------------------------------------------------------------------

    def _client_key(self, context) -> str:
        """Who a stream counts against: with tokens, a hash of the bearer token (the token itself
        is never kept); otherwise the peer's address."""
        for key, value in (context.invocation_metadata() or ()) if self.keyed_by_token else ():
            if key == "authorization":
                return "token:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
        peer = context.peer() or ""
        return "peer:" + peer.rsplit(":", 1)[0]

    @contextlib.contextmanager
    def _admitted(self, context):
        """A stream slot for this call's client for as long as the block runs; RESOURCE_EXHAUSTED
        at once when the server or the client is at its limit."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.slots.held(self._client_key(context)))
            except Refused as e:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
            yield

    @property
    def active_streams(self) -> int:
        return self.slots.active

    def _movie(self, name: str, context):
        if len(name) > self.limits.max_request_text:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "movie name too long")
        try:
            return self.store.get(name)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except StoreError as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))

    def _describe(self, rec, context) -> pb.Movie:
        try:
            return describe_movie(self.store, rec)
        except CorruptContainer as e:
            context.abort(grpc.StatusCode.DATA_LOSS, f"movie {rec.id}: {e}")

    # -- RPCs ----------------------------------------------------------------------------------

    def ListMovies(self, request, context):
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        try:
            after = parse_page_token(request.page_token) if request.page_token else None
        except (ValueError, TypeError, UnicodeDecodeError):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token is not one this server gave")
        try:
            records = self.store.list(after, size + 1)  # one more: is there a next page?
        except StoreError as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        more = len(records) > size
        records = records[:size]
        # The list leaves out quantization ranges: GetMovie carries them.
        return pb.ListMoviesResponse(movies=[movie_message(r) for r in records],
                                     next_page_token=page_token(records[-1]) if more else "")

    def GetMovie(self, request, context):
        return self._describe(self._movie(request.movie, context), context)

    def _decoder(self, sha: str, context) -> tuple[bytes, str, int]:
        try:
            return self.decoders.get(sha)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except OSError as e:
            context.abort(grpc.StatusCode.DATA_LOSS, f"decoder {sha[:12]}… unreadable: {e.strerror}")

    def GetDecoder(self, request, context):
        if len(request.sha256) > self.limits.max_request_text:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "decoder hash too long")
        # A download holds a worker as a stream does, so it is admitted like one.
        with self._admitted(context):
            data, config, decoded = self._decoder(request.sha256, context)
            for offset in range(0, max(1, len(data)), DECODER_CHUNK):
                if not context.is_active():
                    return
                first = offset == 0
                with self._send_watched(context):
                    yield pb.DecoderChunk(offset=offset, total_bytes=len(data),
                                          data=data[offset : offset + DECODER_CHUNK],
                                          config_json=config if first else "", encoding="zstd" if first else "",
                                          decoded_bytes=decoded if first else 0)

    def GetThumbnails(self, request, context):
        rec = self._movie(request.movie, context)
        try:
            thumbs = self.store.thumbnails(rec.id)
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except CorruptContainer as e:
            context.abort(grpc.StatusCode.DATA_LOSS, str(e))
        return pb.Thumbnails(vtt=thumbs.vtt, sprite=thumbs.sprite, sprite_sha256=thumbs.sprite_sha256)

    def StreamLatents(self, request, context):
        rec = self._movie(request.movie, context)
        start, count = request.start_frame, request.frame_count
        if start >= rec.frames:
            context.abort(grpc.StatusCode.OUT_OF_RANGE,
                          f"start frame {start} is past the end of the movie ({rec.frames} frames)")
        if count > self.limits.max_frames_per_request:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"frame_count {count} exceeds the limit of {self.limits.max_frames_per_request}")
        stop = rec.frames if count == 0 else min(rec.frames, start + count)
        # The client may go away at any time; the callback makes the loop notice at once.
        gone = threading.Event()
        context.add_callback(gone.set)
        with self._admitted(context):
            try:
                movie = Container(self.store.movie_path(rec.id))
            except CorruptContainer as e:
                context.abort(grpc.StatusCode.DATA_LOSS, f"movie {rec.id}: {e}")
            with movie:
                first = movie.chunk_index_for_frame(start)
                t0, fps = time.monotonic(), float(rec.fps)
                for i in range(first, len(movie.chunks)):
                    entry = movie.chunks[i]
                    if self.limits.max_lead_s > 0:
                        due = t0 + (entry.start - movie.chunks[first].start) / fps - self.limits.max_lead_s
                        gone.wait(max(0.0, due - time.monotonic()))
                    if entry.start >= stop or gone.is_set():
                        break
                    if time.monotonic() - t0 > self.limits.max_stream_seconds:
                        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                      f"stream ran past the server's limit of {self.limits.max_stream_seconds:.0f} s; "
                                      "ask again from the next frame")
                    try:
                        payload = movie.read_payload(i)
                    except CorruptContainer as e:
                        context.abort(grpc.StatusCode.DATA_LOSS, f"movie {rec.id}: {e}")
                    sound = {}
                    if movie.audio_chunks:  # the sound over these frames travels with them
                        try:
                            sound = dict(audio=movie.read_audio(i), audio_samples=movie.audio_chunks[i].n_frames,
                                         audio_checksum=movie.audio_chunks[i].checksum)
                        except CorruptContainer as e:
                            context.abort(grpc.StatusCode.DATA_LOSS, f"movie {rec.id}: {e}")
                    with self._send_watched(context):
                        yield pb.LatentChunk(start_frame=entry.start, n_frames=entry.n_frames, payload=payload,
                                             checksum=entry.checksum, **sound)

"""The store over plain HTTP/1.1, beside gRPC: the same movies, decoders, chunks, tokens and limits.

    GET /v1/movies[?page_size=N&page_token=T]    the catalog as JSON, in pages       token, private
    GET /v1/movies/{id}                          a movie's description (GetMovie)    token, private
    GET /v1/movies/{id}/chunks/{index}           one coded chunk, the bytes gRPC     public, immutable
                                                 carries; frames and checksum in headers
    GET /v1/movies/{id}/audio/{index}            the sound over chunk {index}        public, immutable
                                                 (codec.audio), samples and checksum in headers
    GET /v1/movies/{id}/thumbnails.vtt           seek thumbnails: a WebVTT track     token, private
    GET /v1/movies/{id}/thumbnails.jpg           ... and the JPEG sprite it points   token, private
                                                 into (ETag: its sha256)
    GET /v1/decoders/{sha256}                    a decoder or part as sent           token, private
    GET /v1/decoders/{sha256}/config.json        a base decoder's config             token, private
    GET /v1/decoders/{sha256}/graph.onnx         a base decoder's ONNX graph with no   token, private
                                                 weights in it: they are read from the
                                                 decoder as sent (the browser's form)
    GET /watch/{id}                              the browser player                  open (asks for the token)
    GET /web/{file}                              its script and ONNX Runtime Web      public
    GET /healthz                                 200 while serving                   open
    GET /metrics                                 Prometheus text (server/metrics.py) token, no-store

A chunk is immutable and, without its decoder, only numbers: it is public, with a year's
``max-age``, an ETag (its checksum), 304 on ``If-None-Match`` and ``Range``, so any HTTP cache
or CDN in front carries the chunks and the origin serves each once. What the numbers mean (the
description with its quantization ranges, and the decoder) stays behind the token when tokens
are configured, and is served ``private`` so no shared cache keeps it.

Status codes: 400 a malformed request, 401 a missing or wrong token, 404 no such movie, chunk or
decoder, 405 a method other than GET or HEAD, 416 a range outside the chunk, 429 past the
server's or this client's concurrent-request limit, 500 a stored chunk that fails its checksum
(data loss; that request only). Error bodies are JSON: {"error": "...", "status": 404}.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
import ssl
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from google.protobuf import json_format

from latentcast.codec.format.container import Container
from latentcast.codec.format.decoder_file import decompress_decoder
from latentcast.codec.format.decoder_state import part_base
from latentcast.codec.format.errors import CorruptContainer, ModelError

from .auth import TokenInterceptor
from .decoder_cache import DecoderCache
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .observe import Call, CallObserver
from .service import DEFAULT_PAGE, MAX_PAGE, Limits, describe_movie, movie_message, page_token, parse_page_token
from .slots import Refused, Slots
from .store import NotFound, Store, StoreError

log = logging.getLogger(__name__)

PUBLIC_IMMUTABLE = "public, max-age=31536000, immutable"
# Headers a chunk response carries besides its bytes: what gRPC's LatentChunk says around its payload.
START_HEADER, FRAMES_HEADER = "X-Latentcast-Start-Frame", "X-Latentcast-Frames"
CHECKSUM_HEADER = "X-Latentcast-Checksum"
ENCODING_HEADER, DECODED_HEADER = "X-Latentcast-Encoding", "X-Latentcast-Decoded-Bytes"
MAX_PATH = 2048

_MOVIES = re.compile(r"/v1/movies")
_MOVIE = re.compile(r"/v1/movies/([^/]{1,1024})")
_CHUNK = re.compile(r"/v1/movies/([^/]{1,1024})/chunks/(\d{1,9})")
_AUDIO = re.compile(r"/v1/movies/([^/]{1,1024})/audio/(\d{1,9})")
_THUMBS = re.compile(r"/v1/movies/([^/]{1,1024})/thumbnails\.(vtt|jpg)")
SAMPLES_HEADER = "X-Latentcast-Samples"
_DECODER = re.compile(r"/v1/decoders/([0-9a-f]{64})")
_CONFIG = re.compile(r"/v1/decoders/([0-9a-f]{64})/config\.json")
_GRAPH = re.compile(r"/v1/decoders/([0-9a-f]{64})/graph\.onnx")
_WATCH = re.compile(r"/watch/([^/]{1,1024})")
_WEB = re.compile(r"/web/((?:vendor/)?[A-Za-z0-9_.-]{1,100})")
# Each route's kind (the access log's and the metrics' method), in the order they are tried.
ROUTES = (("chunk", _CHUNK), ("audio", _AUDIO), ("thumbnails", _THUMBS), ("movies", _MOVIES), ("movie", _MOVIE),
          ("decoder", _DECODER), ("config", _CONFIG), ("graph", _GRAPH), ("watch", _WATCH), ("web", _WEB),
          ("healthz", re.compile(r"/healthz")), ("metrics", re.compile(r"/metrics")))
ALL_ROUTES = frozenset(kind for kind, _ in ROUTES)
METRICS_ONLY = frozenset({"metrics", "healthz"})  # serve --metrics: a listener for the scraper alone
WEB_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
             ".wasm": "application/wasm", ".json": "application/json"}
# The player page is cross-origin isolated, which lets ONNX Runtime Web run threads.
ISOLATED = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
            "Cross-Origin-Resource-Policy": "same-origin"}
GRAPH_CACHE = 256  # graphs kept built (a few kB each): the decoders a server's viewers watch now


def _web_files() -> dict[str, bytes]:
    """The player's files shipped in the package: name -> bytes, read once."""
    root = resources.files("latentcast") / "web"
    out = {}
    for folder, prefix in ((root, ""), (root / "vendor", "vendor/")):
        for entry in folder.iterdir():
            if entry.is_file() and Path(entry.name).suffix in WEB_TYPES:
                out[prefix + entry.name] = entry.read_bytes()
    return out


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


@dataclass
class Reply:
    body: bytes
    content_type: str
    cache_control: str
    headers: dict


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range within ``size`` bytes; None without a header.
    HttpError 416 for one that cannot be served."""
    if header is None:
        return None
    m = re.fullmatch(r"bytes=(\d{0,15})-(\d{0,15})", header.strip())
    if not m or m.group(1) == m.group(2) == "":
        raise HttpError(416, "only one bytes=first-last range is served", {"Content-Range": f"bytes */{size}"})
    if m.group(1) == "":  # the last N bytes
        n = int(m.group(2))
        first, last = max(0, size - n), size - 1
    else:
        first = int(m.group(1))
        last = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
    if first > last or first >= size:
        raise HttpError(416, f"range outside the {size} bytes", {"Content-Range": f"bytes */{size}"})
    return first, last


class Gateway:
    """What the handler asks: the store, the limits, the token check and the decoder cache."""

    def __init__(self, store: Store, limits: Limits, auth: TokenInterceptor | None, decoders: DecoderCache,
                 cors_origin: str | None = None, observer: CallObserver | None = None,
                 routes: frozenset = ALL_ROUTES):
        self.store, self.limits, self.auth, self.decoders = store, limits, auth, decoders
        self.observer, self.routes = observer, routes
        self.cors_origin = cors_origin  # None: no CORS headers at all, so only same-origin pages read answers
        self._lock = threading.Lock()
        self.served: collections.Counter = collections.Counter()  # answers with a body, by kind (the tests' window)
        self._web: dict[str, bytes] | None = None
        self._graphs: collections.OrderedDict = collections.OrderedDict()  # base sha -> ONNX bytes
        self.slots = Slots(limits.max_streams, limits.max_streams_per_client, "concurrent requests")

    @contextlib.contextmanager
    def admitted(self, client: str):
        """A request slot, as a gRPC stream takes one; HttpError 429 when none is free."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.slots.held(client))
            except Refused as e:
                raise HttpError(429, str(e), {"Retry-After": "1"}) from None
            yield

    def private(self, authorization: str | None, immutable: bool = False) -> str:
        """The Cache-Control of what stays behind the token (``immutable``: content-addressed, a
        decoder); HttpError 401 when the token is wrong."""
        if self.auth is not None:
            problem = self.auth.check([("authorization", authorization)] if authorization is not None else [])
            if problem:
                raise HttpError(401, problem, {"WWW-Authenticate": 'Bearer realm="latentcast"'})
        return "private, max-age=31536000, immutable" if immutable else "private, no-cache"

    def _movie(self, name: str):
        try:
            return self.store.get(unquote(name))
        except NotFound as e:
            raise HttpError(404, str(e)) from None
        except StoreError as e:
            raise HttpError(503, str(e)) from None

    def classify(self, path: str) -> tuple[str, tuple[str, ...]]:
        """A path's route kind and its captured parts; ("other", ()) when no route serves it here."""
        for kind, pattern in ROUTES:
            if m := pattern.fullmatch(path):
                return (kind, m.groups()) if kind in self.routes else ("other", ())
        return "other", ()

    def route(self, kind: str, parts: tuple[str, ...], query: str, authorization: str | None) -> Reply:
        """The answer to a request that ``classify`` sorted into ``kind``."""
        if kind == "chunk":
            reply = self.chunk(parts[0], int(parts[1]))
            with self._lock:
                self.served["chunk"] += 1
            return reply
        if kind == "audio":
            return self.chunk(parts[0], int(parts[1]), sound=True)
        if kind == "thumbnails":
            cache = self.private(authorization)  # pictures of the movie: behind the token
            thumbs = self.thumbnails(parts[0])
            if parts[1] == "vtt":
                return Reply(thumbs.vtt.encode(), "text/vtt; charset=utf-8", cache, {})
            return Reply(thumbs.sprite, "image/jpeg", cache, {"ETag": f'"{thumbs.sprite_sha256}"'})
        if kind == "movies":
            return self._json(self.movies(parse_qs(query, max_num_fields=4)), self.private(authorization))
        if kind == "movie":
            cache = self.private(authorization)
            try:
                message = describe_movie(self.store, self._movie(parts[0]))
            except CorruptContainer as e:
                raise HttpError(500, f"data loss: {e}") from None
            return self._json(json_format.MessageToDict(message, preserving_proto_field_name=True), cache)
        if kind == "decoder":
            cache = self.private(authorization, immutable=True)
            data, _config, decoded = self._decoder(parts[0])
            return Reply(data, "application/octet-stream", cache,
                         {ENCODING_HEADER: "zstd", DECODED_HEADER: str(decoded)})
        if kind == "config":
            cache = self.private(authorization, immutable=True)
            _data, config, _decoded = self._decoder(parts[0])  # a part's names its base: {"part_of": sha}
            return Reply(config.encode(), "application/json", cache, {})
        if kind == "graph":
            cache = self.private(authorization, immutable=True)
            graph, decoded = self.graph(parts[0])
            return Reply(graph, "application/octet-stream", cache, {ENCODING_HEADER: "zstd", DECODED_HEADER: str(decoded)})
        if kind == "watch":
            return Reply(self.web_file("watch.html"), WEB_TYPES[".html"], "no-cache", dict(ISOLATED))
        if kind == "web":
            name = parts[0]
            return Reply(self.web_file(name), WEB_TYPES.get(Path(name).suffix, "application/octet-stream"),
                         "public, max-age=3600", dict(ISOLATED))
        if kind == "healthz":
            return Reply(b"ok\n", "text/plain", "no-store", {})
        if kind == "metrics" and self.observer is not None:
            self.private(authorization)  # counts are the operator's business: behind the token
            return Reply(self.observer.metrics.exposition(), METRICS_TYPE, "no-store", {})
        raise HttpError(404, "no such resource")

    def thumbnails(self, name: str):
        rec = self._movie(name)
        try:
            return self.store.thumbnails(rec.id)
        except NotFound as e:
            raise HttpError(404, str(e)) from None
        except CorruptContainer as e:
            raise HttpError(500, f"data loss: {e}") from None

    def _decoder(self, sha: str) -> tuple[bytes, str, int]:
        try:
            return self.decoders.get(sha)
        except NotFound as e:
            raise HttpError(404, str(e)) from None
        except OSError as e:
            raise HttpError(500, f"decoder {sha[:12]}… unreadable: {e.strerror}") from None

    def web_file(self, name: str) -> bytes:
        if self._web is None:
            self._web = _web_files()
        try:
            return self._web[name]
        except KeyError:
            raise HttpError(404, "no such file") from None

    def graph(self, sha: str) -> tuple[bytes, int]:
        """A base decoder's ONNX graph for the browser, built here once from its verified state:
        every weight is external data read from the decoder file, which the page downloads as
        sent (GET /v1/decoders/{sha256}), verifies, and, for a scene, patches with its part. So a
        browser viewer receives the same decoder bytes as every other viewer, plus this graph.
        Returns it zstd-coded, as sent, and its size decoded."""
        from latentcast.codec.runtime.download_size import coded_graph

        with self._lock:
            if sha in self._graphs:
                self._graphs.move_to_end(sha)
                return self._graphs[sha]
        try:
            data, config = self._safetensors(sha)
            if part_base(data):
                raise HttpError(404, "that is a scene part: its base's graph reads it")
            model = coded_graph(config, data, sha)
        except ModelError as e:
            raise HttpError(500, f"decoder {sha[:12]}… does not build: {e}") from None
        with self._lock:
            self._graphs[sha] = model
            while len(self._graphs) > GRAPH_CACHE:
                self._graphs.popitem(last=False)
        return model

    def _safetensors(self, sha: str) -> tuple[bytes, str]:
        """A stored decoder's safetensors bytes (unchecked: their readers check the sha256) and config."""
        wire, config, decoded = self._decoder(sha)
        return decompress_decoder(wire, decoded), config

    @staticmethod
    def _json(obj, cache: str) -> Reply:
        return Reply(json.dumps(obj, separators=(",", ":")).encode(), "application/json", cache, {})

    def movies(self, query: dict) -> dict:
        try:
            size = min(int(query.get("page_size", [DEFAULT_PAGE])[0]) or DEFAULT_PAGE, MAX_PAGE)
            token = query.get("page_token", [""])[0]
            after = parse_page_token(token) if token else None
        except (ValueError, TypeError, UnicodeDecodeError):
            raise HttpError(400, "page_size must be a number and page_token one this server gave") from None
        if size < 0:
            raise HttpError(400, "page_size must not be negative")
        try:
            records = self.store.list(after, size + 1)
        except StoreError as e:
            raise HttpError(503, str(e)) from None
        more = len(records) > size
        records = records[:size]
        return {"movies": [json_format.MessageToDict(movie_message(r), preserving_proto_field_name=True)
                           for r in records],
                "next_page_token": page_token(records[-1]) if more else ""}

    def chunk(self, name: str, index: int, sound: bool = False) -> Reply:
        """Latent chunk ``index``, or with ``sound`` the audio chunk that plays over it."""
        rec = self._movie(name)
        try:
            with Container(self.store.movie_path(rec.id)) as movie:
                entries = movie.audio_chunks if sound else movie.chunks
                if index >= len(entries):
                    what = "audio chunks" if sound else "chunks"
                    raise HttpError(404, f"movie {rec.id} has {len(entries)} {what}; there is no {index}")
                entry = entries[index]
                payload = movie.read_audio(index) if sound else movie.read_payload(index)
        except CorruptContainer as e:
            raise HttpError(500, f"data loss: movie {rec.id}: {e}") from None
        span = {SAMPLES_HEADER: str(entry.n_frames)} if sound else \
            {START_HEADER: str(entry.start), FRAMES_HEADER: str(entry.n_frames)}
        return Reply(payload, "application/octet-stream", PUBLIC_IMMUTABLE,
                     {**span, CHECKSUM_HEADER: str(entry.checksum), "ETag": f'"{entry.checksum:016x}"'})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "latentcast"
    sys_version = ""
    gateway: Gateway  # set on the subclass start_http makes

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        log.debug("http %s %s", self.address_string(), format % args)

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    def _refuse_method(self):
        self._send_error(HttpError(405, "only GET and HEAD", {"Allow": "GET, HEAD"}), head=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def _serve(self, head: bool) -> None:
        t0, kind, parts = time.monotonic(), "other", ()
        self._sent = (0, 0, 0)  # status, body bytes, frames: what _write handed over
        try:
            if len(self.path) > MAX_PATH:
                raise HttpError(400, "request path too long")
            url = urlsplit(self.path)
            kind, parts = self.gateway.classify(url.path)
            with self.gateway.admitted(self.client_address[0]):
                reply = self.gateway.route(kind, parts, url.query, self.headers.get("Authorization"))
                self._send(reply, head)
        except HttpError as e:
            self._send_error(e, head)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug: a 500 for this request, the server serves on
            log.exception("http %s failed", self.path[:200])
            self._send_error(HttpError(500, "internal error"), head)
        finally:
            self._observe(kind, parts, t0)

    def _observe(self, kind: str, parts: tuple[str, ...], t0: float) -> None:
        if self.gateway.observer is None:
            return
        status, nbytes, frames = self._sent
        whole = status == 200
        self.gateway.observer.finished(Call(
            "http", kind, unquote(parts[0]) if parts else "", str(status or "closed"), nbytes,
            time.monotonic() - t0, f"{self.client_address[0]}:{self.client_address[1]}",
            frames=frames if whole and kind == "chunk" else 0, decoder=whole and kind == "decoder"))

    def _send(self, reply: Reply, head: bool) -> None:
        etag = reply.headers.get("ETag")
        base = {"Cache-Control": reply.cache_control, **reply.headers}
        if self.gateway.cors_origin and reply.cache_control.startswith("public"):
            # Public chunks, to a page on another origin the operator named (a player on a CDN's domain).
            base["Access-Control-Allow-Origin"] = self.gateway.cors_origin
            base["Access-Control-Expose-Headers"] = ", ".join((START_HEADER, FRAMES_HEADER, SAMPLES_HEADER,
                                                               CHECKSUM_HEADER, "ETag"))
            base["Vary"] = "Origin"
        if etag and etag in [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]:
            self._write(304, base, b"", head=True)
            return
        body, status = reply.body, 200
        if etag:
            base["Accept-Ranges"] = "bytes"
            span = byte_range(self.headers.get("Range"), len(body))
            if span is not None:
                first, last = span
                body, status = body[first : last + 1], 206
                base["Content-Range"] = f"bytes {first}-{last}/{len(reply.body)}"
        self._write(status, {**base, "Content-Type": reply.content_type}, body, head)
        if status == 200 and FRAMES_HEADER in reply.headers:
            self._sent = (self._sent[0], self._sent[1], int(reply.headers[FRAMES_HEADER]))

    def _send_error(self, e: HttpError, head: bool) -> None:
        body = json.dumps({"error": str(e), "status": e.status}).encode()
        self._write(e.status, {"Content-Type": "application/json", "Cache-Control": "no-store", **e.headers}, body,
                    head)

    def _write(self, status: int, headers: dict, body: bytes, head: bool) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self._sent = (status, 0 if head else len(body), 0)


@dataclass
class RunningHttp:
    server: ThreadingHTTPServer
    thread: threading.Thread
    gateway: Gateway

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_http(listen: str, gateway: Gateway, tls_cert_file: str | None = None, tls_key_file: str | None = None
               ) -> RunningHttp:
    """Serve ``gateway`` on ``listen`` (host:port; port 0 picks one), on a thread of its own."""
    host, _, port = listen.rpartition(":")
    handler = type("Handler", (_Handler,), {"gateway": gateway, "timeout": gateway.limits.stall_s or None})
    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), handler)
    server.daemon_threads = True
    if tls_cert_file:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_cert_file, tls_key_file)
        # The handshake waits for the first read, on the connection's own thread and under its
        # timeout: done in accept(), one slow client would hold up every other.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="latentcast-http", daemon=True)
    thread.start()
    return RunningHttp(server, thread, gateway)

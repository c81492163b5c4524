"""What each finished call leaves behind: its Prometheus counts (server/metrics.py) and, when the
access log is on, one JSON line.

A line holds the transport, the method, the movie or decoder asked for, the status, the bytes
sent, the duration and the peer. Never the token: nothing here reads a call's metadata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass

import grpc

from latentcast.proto import latentcast_pb2 as pb

from .metrics import Metrics

ACCESS_LOG = "latentcast.access"
log = logging.getLogger(ACCESS_LOG)


@dataclass
class Call:
    """One call as it ended."""

    transport: str  # "grpc" or "http"
    method: str  # an RPC's name, or an HTTP route's kind ("chunk", "movie", ...)
    target: str  # the movie or decoder asked for, as the request named it (bounded)
    status: str  # a gRPC code name, or an HTTP status
    nbytes: int
    seconds: float
    peer: str
    frames: int = 0  # frames of latents sent
    first_chunk_s: float | None = None  # a latent stream: from arrival to its first chunk
    decoder: bool = False  # a decoder or part went out whole


class CallObserver:
    """Counts every call in ``metrics``; logs it too when ``log_calls``."""

    def __init__(self, metrics: Metrics, log_calls: bool = False):
        self.metrics, self.log_calls = metrics, log_calls

    def finished(self, call: Call) -> None:
        self.metrics.record(call.transport, call.method, call.status, call.seconds, call.nbytes, call.frames,
                            call.first_chunk_s, call.decoder)
        if self.log_calls:
            log.info(json.dumps({"transport": call.transport, "method": call.method, "target": call.target[:128],
                                 "status": call.status, "bytes": call.nbytes, "ms": round(1000 * call.seconds, 1),
                                 "peer": call.peer}))


def _target(request) -> str:
    """What a request asks for: a movie, or a decoder's sha256 (both checked by the servicer)."""
    return str(getattr(request, "movie", "") or getattr(request, "sha256", ""))[:128]


def _status(context, error: BaseException | None) -> str:
    code = context.code() if hasattr(context, "code") else None
    if code is not None:
        return code.name if isinstance(code, grpc.StatusCode) else str(code)
    # The client went away: mid-send (the stream closed under its yield), or noticed by the
    # servicer, which then ends the stream as if it were done.
    if isinstance(error, GeneratorExit) or not context.is_active():
        return "CANCELLED"
    return "OK" if error is None else "UNKNOWN"


class ObservingInterceptor(grpc.ServerInterceptor):
    """Wraps the service's unary and server-streaming handlers (the only kinds it has) to tell
    ``observer`` how each call ended."""

    def __init__(self, observer: CallObserver):
        self.observer = observer

    @contextlib.contextmanager
    def _observed(self, method: str, request, context):
        """Around one call: yields the Call to fill in (bytes, frames); reports it at the end."""
        t0, error = time.monotonic(), None
        call = Call("grpc", method.rsplit("/", 1)[-1], _target(request), "", 0, 0.0, context.peer() or "")
        try:
            yield call, t0
        except BaseException as e:
            error = e
            raise
        finally:
            call.status, call.seconds = _status(context, error), time.monotonic() - t0
            call.decoder = call.method == "GetDecoder" and call.status == "OK"
            self.observer.finished(call)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or handler.request_streaming:
            return handler
        if handler.response_streaming:
            inner_stream = handler.unary_stream

            def stream(request, context):
                with self._observed(method, request, context) as (call, t0):
                    for message in inner_stream(request, context):
                        if call.first_chunk_s is None and isinstance(message, pb.LatentChunk):
                            call.first_chunk_s = time.monotonic() - t0
                        call.nbytes += message.ByteSize()
                        call.frames += getattr(message, "n_frames", 0)
                        yield message

            return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                        handler.response_serializer)
        inner_unary = handler.unary_unary

        def unary(request, context):
            with self._observed(method, request, context) as (call, _t0):
                answer = inner_unary(request, context)
                call.nbytes = answer.ByteSize()
                return answer

        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)

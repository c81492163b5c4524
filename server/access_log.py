"""A structured access log: one JSON line per call, written when the call ends.

Each line holds the method, the movie or decoder asked for, the status, the bytes sent, the
duration and the peer. Never the token: the interceptor reads no metadata at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

import grpc

ACCESS_LOG = "latentcast.access"
log = logging.getLogger(ACCESS_LOG)


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


@contextlib.contextmanager
def _logged(method: str, request, context):
    """Around one call: yields a one-item list to add the bytes sent to; logs its line at the end."""
    t0, sent, error = time.monotonic(), [0], None
    try:
        yield sent
    except BaseException as e:
        error = e
        raise
    finally:
        log.info(json.dumps({"method": method.rsplit("/", 1)[-1], "target": _target(request),
                             "status": _status(context, error), "bytes": sent[0],
                             "ms": round(1000 * (time.monotonic() - t0), 1), "peer": context.peer()}))


class AccessLogInterceptor(grpc.ServerInterceptor):
    """Wraps the service's unary and server-streaming handlers (the only kinds it has)."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or handler.request_streaming:
            return handler
        if handler.response_streaming:
            inner_stream = handler.unary_stream

            def stream(request, context):
                with _logged(method, request, context) as sent:
                    for message in inner_stream(request, context):
                        sent[0] += message.ByteSize()
                        yield message

            return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                        handler.response_serializer)
        inner_unary = handler.unary_unary

        def unary(request, context):
            with _logged(method, request, context) as sent:
                answer = inner_unary(request, context)
                sent[0] = answer.ByteSize()
                return answer

        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)

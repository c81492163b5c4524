"""Bearer-token authentication as a server interceptor.

Tokens are compared with ``hmac.compare_digest`` against every configured token, so timing
tells nothing about which token or how much of it matched. Tokens are never logged. A
missing ``authorization`` header and an empty token are told apart in the error message.
The health service stays open so load balancers can probe without a token.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path
from typing import Iterable

import grpc

log = logging.getLogger(__name__)

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
TOKEN_ENV = "LATENTCAST_TOKENS"


def load_tokens(cli_tokens: Iterable[str] = (), tokens_file: str | None = None, env: dict | None = None) -> list[str]:
    """Tokens from ``--token``, the LATENTCAST_TOKENS variable (comma-separated) and a file
    (one per line, ``#`` comments); empty entries are dropped."""
    env = os.environ if env is None else env
    tokens = [t for t in cli_tokens]
    tokens += [t.strip() for t in env.get(TOKEN_ENV, "").split(",")]
    if tokens_file:
        for line in Path(tokens_file).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(line)
    return [t for t in tokens if t]


def _abort_handler(handler, code: grpc.StatusCode, message: str):
    def abort(request_or_iterator, context):
        context.abort(code, message)

    if handler is None:
        return None
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


def check_token(metadata: Iterable[tuple[str, str]], tokens: list[bytes]) -> str | None:
    """None when the metadata carries a valid bearer token, else why not."""
    header = None
    for key, value in metadata or ():
        if key == "authorization":
            header = value
            break
    if header is None:
        return "missing bearer token (send 'authorization: Bearer <token>')"
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return "authorization must use the Bearer scheme"
    if not presented:
        return "empty bearer token"
    given = presented.encode()
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given, token)  # no early exit: every token is compared
    return None if ok else "invalid bearer token"


class TokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, tokens: Iterable[str]):
        self._tokens = [t.encode() for t in tokens]
        if not self._tokens:
            raise ValueError("TokenInterceptor needs at least one token")

    def replace(self, tokens: Iterable[str]) -> int:
        """Accept ``tokens`` from now on, instead of the ones before (a rotation without a
        restart); calls already admitted run on. Refuses an empty set, which would lock every
        client out: ValueError, and the old tokens stay."""
        new = [t.encode() for t in tokens]
        if not new:
            raise ValueError("no tokens to accept: keeping the ones before")
        self._tokens = new  # one assignment: a call checks against the old list or the new, never a mix
        return len(new)

    def check(self, metadata: Iterable[tuple[str, str]]) -> str | None:
        """None when ``metadata`` carries a token accepted now, else why not (HTTP asks too)."""
        return check_token(metadata, self._tokens)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method or ""
        if method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        problem = self.check(handler_call_details.invocation_metadata)
        handler = continuation(handler_call_details)
        if problem is None:
            return handler
        log.info("rejected %s: %s", method, problem)
        return _abort_handler(handler, grpc.StatusCode.UNAUTHENTICATED, problem)

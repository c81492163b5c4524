"""Decoders as sent, kept in memory: every view reads its movie's decoder, and they are
content-addressed, so a cached copy is never stale. gRPC and HTTP share one."""

from __future__ import annotations

import collections
import threading

from .store import Store

DECODER_CACHE_BYTES = 256 << 20


class DecoderCache:
    def __init__(self, store: Store, max_bytes: int = DECODER_CACHE_BYTES):
        self.store = store
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict = collections.OrderedDict()  # sha -> (wire, config, size)
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, sha: str) -> tuple[bytes, str, int]:
        """(wire bytes, config JSON, decoded size), the least recently sent dropped past
        ``max_bytes``; the store's NotFound or OSError as it raises them."""
        with self._lock:
            if sha in self._entries:
                self._entries.move_to_end(sha)
                return self._entries[sha]
        entry = self.store.decoder_bytes(sha)
        with self._lock:
            if sha not in self._entries and len(entry[0]) <= self.max_bytes:
                self._entries[sha] = entry
                self._bytes += len(entry[0])
                while self._bytes > self.max_bytes:
                    _, (old, _, _) = self._entries.popitem(last=False)
                    self._bytes -= len(old)
        return entry

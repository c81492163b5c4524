"""Concurrent-request slots: at most so many in all and so many per client. gRPC's streams and
decoder downloads take one each, and so does every HTTP request (each side its own Slots)."""

from __future__ import annotations

import collections
import contextlib
import threading


class Refused(Exception):
    """No slot free; the message says which limit was reached."""


class Slots:
    def __init__(self, total: int, per_client: int, what: str = "concurrent streams"):
        self.total, self.per_client, self.what = total, per_client, what
        self.active = 0
        self._per_client: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def held(self, client: str):
        """A slot for ``client`` while the block runs; Refused at once when none is free."""
        with self._lock:
            if self.active >= self.total:
                raise Refused(f"the server is at its limit of {self.total} {self.what}")
            if self._per_client[client] >= self.per_client:
                raise Refused(f"at most {self.per_client} {self.what} per client")
            self.active += 1
            self._per_client[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1
                self._per_client[client] -= 1
                if self._per_client[client] <= 0:
                    del self._per_client[client]

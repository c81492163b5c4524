"""``host:port`` addresses, as the server listens on them and clients dial them."""

from __future__ import annotations

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(address: str) -> bool:
    """True for an address on this machine's loopback interface (``[::1]:50051`` included)."""
    host = address.rsplit(":", 1)[0].strip().strip("[]")
    return host in LOOPBACK_HOSTS

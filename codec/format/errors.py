"""Error types. The CLI prints them as one line; the server maps them to gRPC codes."""

from __future__ import annotations


class LatentcastError(Exception):
    """Base of every error the project raises on purpose (bad input, not bugs)."""


class VideoError(LatentcastError):
    """A video that cannot be opened, decoded or written."""


class ModelError(LatentcastError):
    """A model directory that is missing, inconsistent or fails its checksum."""


class UsageError(LatentcastError):
    """Arguments that are well-formed but make no sense together (a bad size, 0 latents)."""


class CorruptContainer(LatentcastError):
    """A .lcv file that is truncated, damaged or not a .lcv at all.

    ``offset`` is the byte offset where the problem was found.
    """

    def __init__(self, message: str, offset: int | None = None, *, frames: tuple[int, int] | None = None):
        self.offset = offset
        self.frames = frames  # frame range [start, end) of a damaged chunk, when known
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{message}{where}")

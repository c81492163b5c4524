"""Frames nearest to a frame in latent space: each dimension measured in its own spread over the
movie, so the few dimensions that move most do not drown the rest. Latents only."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from ..format.container import Container
from .latents import chunks_of, frame_latents, spread


@dataclass(frozen=True)
class Neighbour:
    frame: int
    distance: float  # RMS over the dimensions, each in units of its spread over the query's movie
    movie: str = ""  # set for neighbours from other movies of a store

    def to_json(self) -> dict:
        d = {"frame": self.frame, "distance": round(self.distance, 4)}
        if self.movie:
            d["movie"] = self.movie
        return d


def distances(container: Container, query: np.ndarray, scale: np.ndarray):
    """(first frame, distances of that chunk's frames to ``query``), chunk by chunk."""
    for first, z in chunks_of(container):
        yield first, np.sqrt((((z - query) / scale) ** 2).mean(axis=1))


def nearest(container: Container, frame: int, k: int = 8, others: dict[str, Container] | None = None,
            min_gap: int = 0) -> list[Neighbour]:
    """The ``k`` frames nearest to ``frame``, nearest first, without ``frame`` itself nor any
    within ``min_gap`` frames of it; ``others`` (movie id -> container, same encoder) are
    searched too, in the query movie's units."""
    query = frame_latents(container, frame)
    scale = spread(container)
    best: list[tuple[float, int, str]] = []  # a max-heap of the k best, by negated distance

    def offer(movie: str, first: int, d: np.ndarray, skip_near: bool) -> None:
        for i in np.argsort(d)[: k + 2 * min_gap + 1]:
            f = first + int(i)
            if skip_near and abs(f - frame) <= min_gap:
                continue
            item = (-float(d[i]), f, movie)
            if len(best) < k:
                heapq.heappush(best, item)
            elif item > best[0]:
                heapq.heapreplace(best, item)

    for first, d in distances(container, query, scale):
        offer("", first, d, skip_near=True)
    for movie, other in (others or {}).items():
        for first, d in distances(other, query, scale):
            offer(movie, first, d, skip_near=False)
    return [Neighbour(f, -neg, movie) for neg, f, movie in sorted(best, key=lambda x: (-x[0], x[2], x[1]))]

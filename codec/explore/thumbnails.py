"""Seek thumbnails: one picture per scene, the frame whose latents sit in the middle of the
scene's (its medoid), decoded small and tiled into one JPEG sprite, with a WebVTT track whose
cues point into it (``thumbnails.jpg#xywh=x,y,w,h``), the form players use for seek previews.

A scene longer than MAX_SPAN_S is cut into spans of at most that, each with its own picture:
one preview for a twenty-minute scene would show nothing of most of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image

from ..chapters import stored_chapters, timecode
from ..format.container import Container
from ..runtime.decode import decode_frames
from ..runtime.scene_decoders import SceneDecoders
from .latents import spread
from .sheet import encoded, shrink

THUMB_WIDTH = 160
MAX_SPAN_S = 10.0
MAX_THUMBS = 400  # a sprite of 400 tiles at 160x90 is about 2 MB: past it, spans are merged
COLUMNS = 10
MEDOID_SAMPLE = 64  # frames of a span the medoid is chosen among, evenly spread
SPRITE = "thumbnails.jpg"


@dataclass
class Thumbnails:
    sprite: bytes  # JPEG
    vtt: str
    tile: tuple[int, int]  # width, height
    frames: list[int]  # the frame each tile shows, one per cue


def thumbnail_spans(scenes: tuple[tuple[int, int], ...], frames: int, fps: Fraction) -> list[tuple[int, int]]:
    """[start, end) frame spans: each scene, cut into pieces of at most MAX_SPAN_S, at most MAX_THUMBS."""
    chapters = stored_chapters(scenes, frames) if scenes else []
    bounds = [(c.start, c.end) for c in chapters] or [(0, frames)]
    longest = max(1, round(MAX_SPAN_S * float(fps)))
    spans = []
    for start, end in bounds:
        pieces = max(1, math.ceil((end - start) / longest))
        cuts = [start + round(i * (end - start) / pieces) for i in range(pieces + 1)]
        spans += list(zip(cuts, cuts[1:]))
    if len(spans) > MAX_THUMBS:  # merge neighbours evenly: every part of the movie keeps a picture
        keep = np.linspace(0, len(spans), MAX_THUMBS + 1).round().astype(int)
        spans = [(spans[a][0], spans[b - 1][1]) for a, b in zip(keep, keep[1:]) if b > a]
    return spans


def medoid(latents: np.ndarray, scale: np.ndarray) -> int:
    """The row whose summed distance to the others (each dimension in its own spread) is least."""
    z = latents / scale
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    return int(d.sum(1).argmin())


def make_thumbnails(container: Container, decoders: SceneDecoders) -> Thumbnails:
    """A movie's seek thumbnails, from its latents and its decoders."""
    h = container.header
    scale = spread(container)
    picks = []
    for start, end in thumbnail_spans(h.scenes, h.frames, h.fps):
        rows = np.unique(np.linspace(start, end - 1, min(MEDOID_SAMPLE, end - start)).round().astype(int))
        z = np.concatenate([zz for _, zz in container.iter_latents(start, end - start)])[rows - start]
        m = medoid(z, scale)
        picks.append((start, end, int(rows[m]), z[m]))
    tiles = [shrink(next(decode_frames(decoders, frame, latent[None].astype(np.float32)))[0], THUMB_WIDTH)
             for _start, _end, frame, latent in picks]
    th, tw = tiles[0].shape[:2]
    columns = min(COLUMNS, len(tiles))
    sheet = Image.new("RGB", (columns * tw, math.ceil(len(tiles) / columns) * th))
    cues = []
    for i, ((start, end, _frame, _z), tile) in enumerate(zip(picks, tiles)):
        x, y = (i % columns) * tw, (i // columns) * th
        sheet.paste(Image.fromarray(tile), (x, y))
        cues.append(f"{timecode(start / h.fps)} --> {timecode(end / h.fps)}\n{SPRITE}#xywh={x},{y},{tw},{th}\n")
    return Thumbnails(encoded(sheet, "jpeg", quality=75), "WEBVTT\n\n" + "\n".join(cues), (tw, th),
                      [frame for _s, _e, frame, _z in picks])

"""Labelled grids of frames as PNG (inspect's sweeps, similar's contact sheet) and as the JPEG
sprite of seek thumbnails, with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..format.atomic import write_bytes_atomic

LABEL_H = 14  # pixels of caption under each tile
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


MIN_TILE_W = 128  # smaller frames are blown up (pixels kept sharp) so their captions fit


def grid(rows: list[list[np.ndarray]], captions: list[list[str]] | None = None,
         row_titles: list[str] | None = None, gap: int = 2) -> Image.Image:
    """Tiles (H, W, 3) uint8, a list per row, with a caption under each and a title left of each row."""
    scale = -(-MIN_TILE_W // rows[0][0].shape[1])
    if scale > 1:
        rows = [[np.repeat(np.repeat(t, scale, axis=0), scale, axis=1) for t in row] for row in rows]
    h, w = rows[0][0].shape[:2]
    font = ImageFont.load_default()
    title_w = 0
    if row_titles:
        title_w = max(int(font.getlength(t)) for t in row_titles) + 8
    cell_h = h + (LABEL_H if captions else 0) + gap
    columns = max(len(r) for r in rows)
    sheet = Image.new("RGB", (title_w + columns * (w + gap) + gap, len(rows) * cell_h + gap), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        y = gap + r * cell_h
        if row_titles:
            draw.text((4, y + h // 2 - 5), row_titles[r], fill=TEXT, font=font)
        for c, tile in enumerate(row):
            x = title_w + gap + c * (w + gap)
            sheet.paste(Image.fromarray(np.ascontiguousarray(tile)), (x, y))
            if captions:
                draw.text((x + 1, y + h + 1), captions[r][c], fill=TEXT, font=font)
    return sheet


def encoded(image: Image.Image, kind: str = "png", quality: int = 80) -> bytes:
    out = io.BytesIO()
    if kind == "jpeg":
        image.save(out, "JPEG", quality=quality, optimize=True)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def save(image: Image.Image, path: str | Path) -> int:
    """Write ``image`` as PNG (or JPEG for .jpg/.jpeg), atomically; returns the bytes written."""
    kind = "jpeg" if str(path).lower().endswith((".jpg", ".jpeg")) else "png"
    data = encoded(image, kind)
    write_bytes_atomic(path, data)
    return len(data)


def shrink(frame: np.ndarray, width: int) -> np.ndarray:
    """A frame scaled to ``width`` pixels across, its aspect kept."""
    h, w = frame.shape[:2]
    if w <= width:
        return frame
    height = max(1, round(h * width / w))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.LANCZOS))

"""Which decoder part decodes which frames of the video a model was fit to: ``parts.json``.

torch-free, like config.py, so the store registers a model's parts without building anything::

    MODEL_DIR/
      parts.json                    base sha256, the video's frame count, and per scene its
                                    frames [start, end) and its part's sha256
      parts/<sha256>.safetensors    one part per scene (codec.nn.parts), named by its hash

``parts.json`` carries the sha256 of its own body, and each part file is checked against its
name before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..format.atomic import write_text_atomic
from ..format.decoder_file import sha256_bytes
from ..format.errors import ModelError, UsageError

PART_INDEX = "parts.json"
PARTS_DIR = "parts"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class PartEntry:
    start: int
    end: int
    sha256: str
    psnr_base: float = 0.0  # the scene's PSNR with the base alone, as the trainer measured it
    psnr_part: float = 0.0  # and with what ships for it: its part, or the base again
    bytes_sent: int = 0  # the part as it travels (zstd); 0 where the scene ships with the base
    psnr_fit: float = 0.0  # what the fitted part reached, sent or not
    scene_bytes: int = 0  # the scene's latents and its share of the base: what a part is weighed against


@dataclass
class PartIndex:
    base_sha256: str
    frames: int
    parts: list[PartEntry] = field(default_factory=list)

    def header_parts(self, frames: int) -> tuple[tuple[int, str], ...]:
        """MovieHeader.parts for the first ``frames`` frames of the video the parts were fit to: a
        scene that ships with the base names the base; () when every scene does."""
        parts = tuple((p.start, p.sha256) for p in self.parts if p.start < frames)
        return () if all(sha == self.base_sha256 for _, sha in parts) else parts

    @property
    def bytes_sent(self) -> int:
        return sum(p.bytes_sent for p in self.parts)

    def _body(self) -> str:
        return json.dumps({"base_sha256": self.base_sha256, "frames": self.frames,
                           "parts": [asdict(p) for p in self.parts]}, sort_keys=True)

    def to_json(self) -> str:
        body = self._body()
        return json.dumps({**json.loads(body), "sha256": hashlib.sha256(body.encode()).hexdigest()},
                          indent=1, sort_keys=True)


def part_config(base_sha256: str) -> str:
    """A part's "config", sent with it as a base's is: it names the base."""
    return json.dumps({"part_of": base_sha256}) + "\n"


def part_shas(parts: tuple[tuple[int, str], ...], base_sha256: str) -> list[str]:
    """The distinct parts a movie's header names, in order, leaving out the base (named for a
    scene that ships with the base alone): what a viewer of the whole movie downloads."""
    return [sha for sha in dict.fromkeys(sha for _, sha in parts) if sha != base_sha256]


def part_path(model_dir: str | os.PathLike, sha256: str) -> Path:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ModelError(f"no decoder part {sha256[:64]!r}")
    return Path(model_dir) / PARTS_DIR / f"{sha256}.safetensors"


def read_part(model_dir: str | os.PathLike, sha256: str) -> bytes:
    """A part's bytes from a model directory, checked against its sha256."""
    path = part_path(model_dir, sha256)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    if sha256_bytes(data) != sha256:
        raise ModelError(f"{path}: sha256 mismatch")
    return data


def save_part_index(model_dir: str | os.PathLike, index: PartIndex) -> None:
    write_text_atomic(Path(model_dir) / PART_INDEX, index.to_json() + "\n")


def load_part_index(model_dir: str | os.PathLike, base_sha256: str) -> PartIndex | None:
    """The model's parts, or None when it has none. A parts.json made for another base (the base
    was retrained since) or damaged is an error, never silently ignored."""
    path = Path(model_dir) / PART_INDEX
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        index = PartIndex(str(raw["base_sha256"]), int(raw["frames"]),
                          [PartEntry(**p) for p in raw["parts"]])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{path}: unreadable ({e})") from None
    if hashlib.sha256(index._body().encode()).hexdigest() != raw.get("sha256"):
        raise ModelError(f"{path}: checksum mismatch")
    if index.base_sha256 != base_sha256:
        raise ModelError(f"{path}: these parts were fit to another base decoder; fit them again "
                         "(latentcast parts) or delete parts.json")
    starts = [p.start for p in index.parts]
    if not index.parts or starts[0] != 0 or any(b.start != a.end for a, b in zip(index.parts, index.parts[1:])) \
            or index.parts[-1].end != index.frames:
        raise ModelError(f"{path}: the parts do not cover the video's frames in order")
    return index


def model_parts(model_dir: str | os.PathLike, base_sha256: str, frames: int) -> tuple[tuple[int, str], ...]:
    """MovieHeader.parts for encoding the first ``frames`` frames of the video a model with parts
    was fit to; () for a model without parts. Parts are keyed to that video's frame numbers, so
    a video of more frames than it had is refused rather than decoded with the wrong scenes."""
    index = load_part_index(model_dir, base_sha256)
    if index is None:
        return ()
    if frames > index.frames:
        raise UsageError(f"{Path(model_dir) / PART_INDEX}: the scene parts cover the {index.frames} frames of the "
                         f"video they were fit to, this one has {frames}; encode with --no-parts")
    return index.header_parts(frames)

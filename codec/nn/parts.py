"""Decoder parts: what one scene's decoder changes against the movie's base decoder.

A movie's decoder is its base (``decoder.safetensors``, shared by every scene) plus, per scene,
a part. A part is a small safetensors file that names the base it applies to (by sha256) and
holds, for each tensor the scene retuned:

- ``<weight>.delta``: int8, the scene's weight codes minus the base's, at the same width. Codes
  the scene left alone are 0, which zstd codes in almost nothing;
- ``<weight>.qscale``: the scene's per-output-channel scales (float32), always sent whole: a
  per-channel gain moves every scale and no code, so it costs a scale per channel;
- ``<bias>``: the scene's bias (float16).

Applying a part is integer arithmetic on the codes plus replacing whole tensors, so a part
decodes to the very weights the trainer saved, bit for bit, on every machine. Nothing is
unpickled: a part is read with safetensors after its sha256 matches the movie's header.
"""

from __future__ import annotations

import json
import struct
import threading
from collections import OrderedDict
from concurrent import futures
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save as st_save

from ..format.container import part_at
from ..format.errors import ModelError
from .config import DECODER, CodecConfig, load_config, read_model_file
from .model import Decoder
from .part_index import read_part
from .weights import decoder_from_state, load_state_verified

DELTA = ".delta"
BASE_KEY = "base_sha256"


def make_part(base: dict[str, torch.Tensor], scene: dict[str, torch.Tensor], base_sha256: str) -> bytes:
    """The part that turns the ``base`` int8 state into ``scene``'s (both as int8_state_bytes
    writes them, same architecture and widths): only what differs is stored."""
    if set(base) != set(scene):
        raise ValueError("a part joins two states of one architecture")
    out: dict[str, torch.Tensor] = {}
    for k, v in scene.items():
        b = base[k]
        if v.shape != b.shape or v.dtype != b.dtype:
            raise ValueError(f"{k}: the scene's tensor does not match the base's")
        if torch.equal(v, b):
            continue
        if v.dtype == torch.int8:
            delta = v.to(torch.int16) - b.to(torch.int16)
            if delta.abs().max() > 127:
                raise ValueError(f"{k}: codes differ by more than an int8 holds")
            out[k + DELTA] = delta.to(torch.int8).contiguous()
        else:
            out[k] = v.contiguous()
    return st_save(out, metadata={BASE_KEY: base_sha256})


def part_base(data: bytes) -> str:
    """The sha256 of the base a part's bytes name (its safetensors metadata), without loading it."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + n]).get("__metadata__", {})
        return str(meta.get(BASE_KEY, ""))
    except (struct.error, ValueError, AttributeError):
        return ""


def apply_part(base: dict[str, torch.Tensor], data: bytes, sha256: str, base_sha256: str,
               what: str = "decoder part") -> dict[str, torch.Tensor]:
    """The scene's int8 state: ``base`` with the part in ``data`` applied, after checking the
    part's sha256 and that it was made for this base. Raises ModelError on any mismatch."""
    part = load_state_verified(data, sha256, what)
    if part_base(data) != base_sha256:
        raise ModelError(f"{what} was made for another base decoder")
    state = dict(base)
    for k, v in part.items():
        name = k[: -len(DELTA)] if k.endswith(DELTA) else k
        b = base.get(name)
        if b is None:
            raise ModelError(f"{what}: the base has no tensor {name[:60]!r}")
        if k.endswith(DELTA):
            if v.dtype != torch.int8 or v.shape != b.shape or b.dtype != torch.int8:
                raise ModelError(f"{what}: {name[:60]} is not an int8 delta of the base's shape")
            codes = b.to(torch.int16) + v.to(torch.int16)
            if codes.abs().max() > 127:
                raise ModelError(f"{what}: {name[:60]} leaves the int8 range")
            state[name] = codes.to(torch.int8)
        else:
            if v.shape != b.shape or v.dtype != b.dtype:
                raise ModelError(f"{what}: {name[:60]} does not match the base's shape or type")
            state[name] = v
    return state


class SceneDecoders:
    """The decoders of one movie: the base, or with parts the base with each scene's part
    applied. A scene's decoder is built the first time a frame of it is asked for, from part
    bytes that ``fetch(sha256)`` returns; ``prefetch`` starts that fetch early, on a thread, so
    the next scene's part arrives while this one plays. At most ``keep`` built decoders are held.
    A scene whose entry names the base itself (no part was worth sending) decodes with the base,
    fetching nothing.
    """

    def __init__(self, base: bytes, cfg: CodecConfig, parts: tuple[tuple[int, str], ...] = (),
                 fetch: Callable[[str], bytes] | None = None, keep: int = 2, what: str = "decoder"):
        if parts and fetch is None:
            raise ValueError("a movie with parts needs a way to fetch them")
        self.cfg = cfg
        self.parts = tuple(parts)
        self._base_state = load_state_verified(base, cfg.decoder_sha256, what)
        self._fetch = fetch
        self._keep = max(1, keep)
        self._built: OrderedDict[int | None, Decoder] = OrderedDict()
        self._pending: dict[int, futures.Future] = {}
        self._lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentcast-parts") \
            if parts else None
        self.fetched: list[str] = []  # sha256 of every part fetched, in order (what a viewer downloaded)

    def part_at(self, frame: int) -> int | None:
        return part_at(self.parts, frame)

    def _uses_base(self, i: int | None) -> bool:
        """A scene that ships with the base alone (its part entry names the base)."""
        return i is None or self.parts[i][1] == self.cfg.decoder_sha256

    def prefetch(self, frame: int) -> None:
        """Start fetching the part that decodes ``frame``, if it is not built or on its way."""
        i = self.part_at(frame)
        if self._uses_base(i):
            return
        with self._lock:
            if i not in self._built and i not in self._pending:
                self._pending[i] = self._pool.submit(self._fetch_part, i)

    def _fetch_part(self, i: int) -> bytes:
        sha = self.parts[i][1]
        data = self._fetch(sha)
        self.fetched.append(sha)
        return data

    def decoder_at(self, frame: int) -> Decoder:
        """The decoder for ``frame``'s scene, fetching and building it if needed."""
        i = self.part_at(frame)
        if self._uses_base(i):
            i = None  # every scene that ships with the base shares one built decoder
        with self._lock:
            if i in self._built:
                self._built.move_to_end(i)
                return self._built[i]
        if i is None:
            decoder = decoder_from_state(self._base_state, self.cfg)
        else:
            self.prefetch(frame)
            with self._lock:
                pending = self._pending[i]
            try:
                data = pending.result()
            finally:
                with self._lock:
                    self._pending.pop(i, None)
            sha = self.parts[i][1]
            what = f"decoder part {sha[:12]}…"
            decoder = decoder_from_state(apply_part(self._base_state, data, sha, self.cfg.decoder_sha256, what),
                                         self.cfg, what)
        with self._lock:
            self._built[i] = decoder
            while len(self._built) > self._keep:
                self._built.popitem(last=False)
        return decoder

    def spans(self, first: int, n: int) -> list[tuple[int, int]]:
        """Frames [first, first + n) cut where the scene changes: (offset, count) within them."""
        if not self.parts:
            return [(0, n)] if n else []
        cuts = [s - first for s, _ in self.parts if first < s < first + n]
        bounds = [0, *cuts, n]
        return [(a, b - a) for a, b in zip(bounds, bounds[1:]) if b > a]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def model_decoders(model_dir, parts: tuple[tuple[int, str], ...] = ()) -> SceneDecoders:
    """A model directory's decoders for a movie with ``parts`` (MovieHeader.parts), the parts
    read from its parts/ folder."""
    d = Path(model_dir)
    return SceneDecoders(read_model_file(d / DECODER), load_config(d), parts,
                         fetch=lambda sha: read_part(d, sha), what=str(d / DECODER))

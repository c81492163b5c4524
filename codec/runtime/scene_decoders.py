"""A movie's decoders: its base, and per scene the base with that scene's part applied
(codec.format.decoder_state), each built for one runtime the first time a frame of it is asked for."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent import futures
from pathlib import Path
from typing import Callable

from ..format.container import part_at, part_spans
from ..format.decoder_state import apply_part, load_state_verified
from ..nn.config import DECODER, CodecConfig, load_config, read_model_file
from ..nn.part_index import read_part
from .backends import DEFAULT_RUNTIME, FrameDecoder, build_decoder, resolve_runtime


class SceneDecoders:
    """The decoders of one movie. A scene's decoder is built from part bytes that
    ``fetch(sha256)`` returns; ``prefetch`` starts that fetch early, on a thread, so the next
    scene's part arrives while this one plays. At most ``keep`` built decoders are held. A scene
    whose entry names the base itself (no part was worth sending) decodes with the base,
    fetching nothing. ``runtime``: codec.runtime.backends.RUNTIMES.
    """

    def __init__(self, base: bytes, cfg: CodecConfig, parts: tuple[tuple[int, str], ...] = (),
                 fetch: Callable[[str], bytes] | None = None, keep: int = 2, what: str = "decoder",
                 runtime: str = DEFAULT_RUNTIME):
        if parts and fetch is None:
            raise ValueError("a movie with parts needs a way to fetch them")
        self.cfg = cfg
        self.parts = tuple(parts)
        self.runtime = resolve_runtime(runtime, cfg)
        self._base_state = load_state_verified(base, cfg.decoder_sha256, what)
        self._what = what
        self._fetch = fetch
        self._keep = max(1, keep)
        self._built: OrderedDict[int | None, FrameDecoder] = OrderedDict()
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

    def decoder_at(self, frame: int) -> FrameDecoder:
        """The decoder for ``frame``'s scene, fetching and building it if needed."""
        i = self.part_at(frame)
        if self._uses_base(i):
            i = None  # every scene that ships with the base shares one built decoder
        with self._lock:
            if i in self._built:
                self._built.move_to_end(i)
                return self._built[i]
        if i is None:
            decoder = build_decoder(self._base_state, self.cfg, self.runtime, self._what)
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
            state = apply_part(self._base_state, data, sha, self.cfg.decoder_sha256, what)
            decoder = build_decoder(state, self.cfg, self.runtime, what)
        with self._lock:
            self._built[i] = decoder
            while len(self._built) > self._keep:
                self._built.popitem(last=False)
        return decoder

    def spans(self, first: int, n: int) -> list[tuple[int, int]]:
        """Frames [first, first + n) cut where the scene changes: (offset, count) within them."""
        return part_spans(self.parts, first, n)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def model_decoders(model_dir, parts: tuple[tuple[int, str], ...] = (), runtime: str = DEFAULT_RUNTIME
                   ) -> SceneDecoders:
    """A model directory's decoders for a movie with ``parts`` (MovieHeader.parts), the parts
    read from its parts/ folder."""
    d = Path(model_dir)
    return SceneDecoders(read_model_file(d / DECODER), load_config(d), parts,
                         fetch=lambda sha: read_part(d, sha), what=str(d / DECODER), runtime=runtime)

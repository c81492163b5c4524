"""Decoder parts: what one scene's decoder changes against the movie's base decoder.

A movie's decoder is its base (``decoder.safetensors``, shared by every scene) plus, per scene,
a part. A part is a small safetensors file that names the base it applies to (by sha256) and
holds, for each tensor the scene retuned:

- ``<weight>.delta``: int8, the scene's weight codes minus the base's, at the same width. Codes
  the scene left alone are 0, which zstd codes in almost nothing;
- ``<weight>.qscale``: the scene's per-output-channel scales (float32), always sent whole: a
  per-channel gain moves every scale and no code, so it costs a scale per channel;
- ``<bias>``: the scene's bias (float16).

This module makes parts (the trainer's side). Viewers apply them with
codec.format.decoder_state.apply_part, in numpy, so a part decodes to the very weights the
trainer saved, bit for bit, on every machine and in every runtime. Nothing is unpickled.
"""

from __future__ import annotations

import numpy as np
from safetensors.numpy import save as st_save

from ..format.decoder_state import BASE_KEY, DELTA, State


def make_part(base: State, scene: State, base_sha256: str) -> bytes:
    """The part that turns the ``base`` int8 state into ``scene``'s (both as int8_state_bytes
    writes them, same architecture and widths): only what differs is stored."""
    if set(base) != set(scene):
        raise ValueError("a part joins two states of one architecture")
    out: State = {}
    for k, v in scene.items():
        v, b = np.asarray(v), np.asarray(base[k])
        if v.shape != b.shape or v.dtype != b.dtype:
            raise ValueError(f"{k}: the scene's tensor does not match the base's")
        if np.array_equal(v, b):
            continue
        if v.dtype == np.int8:
            delta = v.astype(np.int16) - b.astype(np.int16)
            if np.abs(delta).max() > 127:
                raise ValueError(f"{k}: codes differ by more than an int8 holds")
            out[k + DELTA] = np.ascontiguousarray(delta.astype(np.int8))
        else:
            out[k] = np.ascontiguousarray(v)
    return st_save(out, metadata={BASE_KEY: base_sha256})

"""A decoder's weights as numpy arrays: read from verified safetensors bytes, dequantized, and
with a scene's part applied. No torch, so a viewer builds its decoder with ONNX Runtime alone;
the torch decoder loads these same arrays, so every runtime starts from identical float32 weights.

The decoder file holds, per conv weight, int8 codes and a float32 scale per output channel
(``<weight>.qscale``), and float16 biases. A part (``codec.nn.parts.make_part``) names its base
by sha256 in its metadata and holds ``<weight>.delta`` (int8 code differences), whole
``.qscale`` tensors and whole biases. Applying one is integer arithmetic, so a part decodes to
the weights the trainer saved, bit for bit, on every machine.
"""

from __future__ import annotations

import json
import struct

import numpy as np
from safetensors.numpy import load as st_load

from .decoder_file import check_safetensors_header, sha256_bytes
from .errors import ModelError

QSCALE = ".qscale"  # suffix of the per-output-channel scale stored beside each int8 weight
DELTA = ".delta"  # suffix of a part's code differences
BASE_KEY = "base_sha256"  # a part's metadata key naming the base it applies to

State = dict[str, np.ndarray]


def load_state_verified(data: bytes, expected_sha256: str, what: str) -> State:
    """Parse safetensors bytes after checking their sha256; ModelError on any mismatch. An empty
    ``expected_sha256`` (a model dir from before hashes were recorded) skips only the hash."""
    actual = sha256_bytes(data)
    if expected_sha256 and actual != expected_sha256:
        raise ModelError(f"{what}: sha256 mismatch (expected {expected_sha256[:12]}…, got {actual[:12]}…)")
    check_safetensors_header(data, what)
    try:
        return st_load(bytes(data))
    except Exception as e:  # safetensors raises its own error types for malformed bodies
        raise ModelError(f"{what}: unreadable safetensors ({e})") from None


def per_output_channel(scale: np.ndarray, ndim: int) -> np.ndarray:
    """A scale per output channel, shaped to broadcast against a weight of ``ndim`` dims."""
    return scale.reshape(-1, *([1] * (ndim - 1)))


def dequantize_state(state: State) -> State:
    """float32 weights from an int8 (with scales) or plain float state: codes times their
    channel's scale, one float32 multiply per weight, as the trainer's fake quantization computes it."""
    out: State = {}
    for k, v in state.items():
        if k.endswith(QSCALE):
            continue
        scale = state.get(k + QSCALE)
        if scale is not None:
            if v.dtype != np.int8 or scale.ndim != 1 or v.ndim < 1 or scale.shape[0] != v.shape[0]:
                raise ModelError(f"{k[:60]}: malformed int8 weight")
            v = v.astype(np.float32) * per_output_channel(scale.astype(np.float32), v.ndim)
        out[k] = np.ascontiguousarray(v, dtype=np.float32)
    return out


def part_base(data: bytes) -> str:
    """The sha256 of the base a part's bytes name (its safetensors metadata), without loading it."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + n]).get("__metadata__", {})
        return str(meta.get(BASE_KEY, ""))
    except (struct.error, ValueError, AttributeError):
        return ""


def apply_part(base: State, data: bytes, sha256: str, base_sha256: str, what: str = "decoder part") -> State:
    """The scene's int8 state: ``base`` with the part in ``data`` applied, after checking the
    part's sha256 and that it was made for this base. ModelError on any mismatch."""
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
            if v.dtype != np.int8 or v.shape != b.shape or b.dtype != np.int8:
                raise ModelError(f"{what}: {name[:60]} is not an int8 delta of the base's shape")
            codes = b.astype(np.int16) + v.astype(np.int16)
            if np.abs(codes).max(initial=0) > 127:
                raise ModelError(f"{what}: {name[:60]} leaves the int8 range")
            state[name] = codes.astype(np.int8)
        else:
            if v.shape != b.shape or v.dtype != b.dtype:
                raise ModelError(f"{what}: {name[:60]} does not match the base's shape or type")
            state[name] = v
    return state

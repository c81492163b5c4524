"""The model's config: what a model directory says it is, and the only home of its defaults.

torch-free on purpose: the store, the server and a viewer read configs without building a
network. ``CodecConfig.plan()`` fits the grid, strides and widths to a frame size; the field
defaults are today's architecture. Configs written before a default changed name no value for
that field, and ``upgrade_config`` fills in what those models were built with.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..format.errors import ModelError, UsageError
from ..format.quantizer import DEFAULT_BITS, check_bits

CONFIG = "config.json"
ENCODER = "encoder.safetensors"
DECODER = "decoder.safetensors"
HEADS = ("shuffle", "dwshuffle", "conv")

MIN_WEIGHT_BITS, MAX_WEIGHT_BITS, DEFAULT_WEIGHT_BITS = 2, 8, 6


def check_weight_bits(bits: float, fractional: bool = False) -> float:
    """Refuse a weight width out of range; whole bits, or with ``fractional`` quarters (5.25)."""
    ok = isinstance(bits, (int, float)) and not isinstance(bits, bool) and MIN_WEIGHT_BITS <= bits <= MAX_WEIGHT_BITS
    if not ok or (bits * 4 if fractional else bits) % 1:
        raise UsageError(f"--weight-bits must be {'a multiple of 0.25 ' if fractional else 'a whole number '}between "
                         f"{MIN_WEIGHT_BITS} and {MAX_WEIGHT_BITS}, got {bits}")
    return bits


def top_code(bits: float) -> int:
    """The largest code magnitude of a ``bits``-bit weight: 2**(bits-1) - 1, so 6 bits are
    ±31. A fractional width gives the odd count of levels nearest 2**bits (5.5: ±22, 45 levels)."""
    return round(2 ** (bits - 1)) - 1



# What a viewer reads of the trainer's notes: `auto` picks bf16 only within its measured loss.
VIEWER_TRAINED = ("bf16_loss_db",)

# What a config that leaves a field out was built with: those fields came after the first
# models, whose configs therefore do not name them.
LEGACY_FIELDS = {"stem_channels": 96, "head": "conv", "weight_bits": 8}


def upgrade_config(raw: dict) -> dict:
    """A config.json's fields, with the values that configs from before each field existed meant."""
    if not isinstance(raw, dict):
        raise ValueError("a config is a JSON object")
    return {**{k: v for k, v in LEGACY_FIELDS.items() if k not in raw}, **raw}


def _smooth_at_least(n: int) -> int:
    """Smallest 5-smooth number (only factors 2, 3, 5) >= n; PixelShuffle factors come from it."""
    m = max(1, n)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _factor(n: int) -> list[int]:
    out = []
    for p in (5, 3, 2):
        while n % p == 0:
            out.append(p)
            n //= p
    return out


def plan_architecture(width: int, height: int, latent_dim: int) -> tuple[int, int, int, tuple[int, ...]]:
    """Pick (latent_channels, grid_h, grid_w, strides) for a frame size.

    The grid follows the frame's aspect ratio so that little of the decoded canvas is
    padding; among equal choices a finer grid (fewer channels, at least 8) wins, since
    spatial latents are easier for a conv decoder to use.
    """
    if latent_dim <= 0:
        raise UsageError(f"--latent-dim must be positive, got {latent_dim}")
    if width < 8 or height < 8:
        raise UsageError(f"frame size {width}x{height} is too small: both sides must be at least 8 pixels")
    best = None
    for gh in range(1, 17):
        for gw in range(1, 17):
            if latent_dim % (gh * gw):
                continue
            channels = latent_dim // (gh * gw)
            if channels < 4 and gh * gw > 1:
                continue
            stride = _smooth_at_least(math.ceil(max(height / gh, width / gw)))
            if stride < 8:
                continue  # a grid as fine as the frame leaves nothing for the decoder to do
            waste = (gh * stride * gw * stride) / (width * height)
            score = (round(waste, 3), 0 if channels >= 8 else 1, -(gh * gw))
            if best is None or score < best[0]:
                best = (score, channels, gh, gw, stride)
    if best is None:
        raise UsageError(f"no latent grid fits latent_dim={latent_dim} at {width}x{height}")
    _, channels, gh, gw, stride = best
    # Smallest factors first: the largest upsampling is the head's, where it costs only a
    # 3-channel shuffle, and each stage's convs run on the fewest positions.
    return channels, gh, gw, tuple(sorted(_factor(stride)))


def _geometric(n_stages: int, first: int, last: int) -> tuple[int, ...]:
    """Channel widths that change geometrically from ``first`` to ``last`` over the stages.

    The decoder shrinks them as resolution grows (HNeRV's reduction), so the expensive
    convolutions run at low resolution.
    """
    if n_stages == 1:
        return (last,)
    return tuple(int(round(first * (last / first) ** (i / (n_stages - 1)))) for i in range(n_stages))


@dataclass(frozen=True)
class Capacity:
    """One rung of the decoder-size ladder: the stem's width, then stage widths falling
    geometrically from ``first`` to ``last`` (the channels the RGB head sees)."""

    name: str
    stem: int
    first: int
    last: int


# The ladder, smallest first. "large" is the architecture every model had before the ladder.
# The head sees 24 channels from "small" up: against 16 it buys quality for more MACs a pixel,
# and 32 costs much of the 720p decode speed (docs/experiments.md, as are each rung's results).
CAPACITIES = {c.name: c for c in (
    Capacity("tiny", 32, 24, 16),
    Capacity("small", 64, 32, 24),
    Capacity("medium", 64, 48, 24),
    Capacity("large", 128, 64, 24),
    Capacity("huge", 192, 96, 32),
)}
DEFAULT_CAPACITY = "large"


def capacity_of(name: str) -> Capacity:
    try:
        return CAPACITIES[name]
    except KeyError:
        raise UsageError(f"unknown capacity {name!r}; known: {', '.join(CAPACITIES)}") from None


@dataclass
class CodecConfig:
    """Everything needed to rebuild the model; saved as ``config.json`` beside the weights."""

    width: int
    height: int
    latent_dim: int = 512
    architecture: str = "hnerv-lite"
    latent_channels: int = 0
    grid: tuple[int, int] = (0, 0)
    strides: tuple[int, ...] = ()
    stem_channels: int = 128
    decoder_channels: tuple[int, ...] = ()
    # "shuffle": the last stride is the RGB head's PixelShuffle, after a 3x3 conv to 3*s*s.
    # "dwshuffle": the same shuffle after a depthwise 3x3 and a 1x1 conv, about a ninth of the
    # multiply-adds where they are most (the head runs on the most positions). "conv": every
    # stride is a stage and a 3x3 conv makes RGB at full resolution (the first models, which still load).
    head: str = "shuffle"
    # Bits of the shipped decoder's weight codes where weight_layer_bits names no width (all of
    # them under --weight-bits).
    weight_bits: int = DEFAULT_WEIGHT_BITS
    # Per-layer widths the trainer chose within a --weight-budget, by state-dict name
    # ("stages.0.0.weight": 5.25; quarter bits allowed); a layer not named here has weight_bits.
    weight_layer_bits: dict = field(default_factory=dict)
    encoder_channels: tuple[int, ...] = ()
    # Filled in by the trainer after the weights are written.
    decoder_sha256: str = ""
    encoder_sha256: str = ""
    decoder_dtype: str = "int8"
    fps: float = 0.0
    trained: dict = field(default_factory=dict)

    @classmethod
    def plan(cls, width: int, height: int, latent_dim: int = 512, capacity: str = DEFAULT_CAPACITY,
             **overrides) -> "CodecConfig":
        """A config with grid, strides and widths chosen for this frame size, at one of the
        CAPACITIES (the decoder's widths); ``overrides`` set fields directly."""
        channels, gh, gw, strides = plan_architecture(width, height, latent_dim)
        n = len(strides) - 1  # the last stride belongs to the shuffle head
        rung = capacity_of(capacity)
        cfg = cls(
            width=width,
            height=height,
            latent_dim=latent_dim,
            latent_channels=channels,
            grid=(gh, gw),
            strides=strides,
            stem_channels=rung.stem,
            decoder_channels=_geometric(n, rung.first, rung.last),
            encoder_channels=_geometric(n + 1, 16, 64),
        )
        cfg = dataclasses.replace(cfg, **overrides)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise UsageError when the head, strides and channel lists do not fit together."""
        check_weight_bits(self.weight_bits)
        if not isinstance(self.weight_layer_bits, dict):
            raise UsageError("weight_layer_bits must map layer names to bit widths")
        for bits in self.weight_layer_bits.values():
            check_weight_bits(bits, fractional=True)
        if self.head not in HEADS:
            raise UsageError(f"unknown decoder head {self.head!r}; known: {sorted(HEADS)}")
        stages = len(self.strides) - (1 if self.shuffles else 0)
        if len(self.decoder_channels) != stages or len(self.encoder_channels) != len(self.strides):
            raise UsageError(f"{self.head} head with strides {self.strides} needs {stages} decoder widths and "
                             f"{len(self.strides)} encoder widths, got {self.decoder_channels} and "
                             f"{self.encoder_channels}")

    @property
    def shuffles(self) -> bool:
        """Whether the head ends in a PixelShuffle by the last stride (its own, not a stage's)."""
        return self.head in ("shuffle", "dwshuffle")

    @property
    def trained_bits(self) -> int:
        """The latent bit width training fine-tuned this model for: what encoding defaults to,
        since the model loses least there."""
        bits = self.trained.get("qat_bits", DEFAULT_BITS) if isinstance(self.trained, dict) else DEFAULT_BITS
        try:
            return check_bits(int(bits))
        except (TypeError, ValueError, UsageError):
            return DEFAULT_BITS

    def weight_width(self, name: str) -> float:
        """Bits of the shipped codes of the decoder weight ``name``."""
        return self.weight_layer_bits.get(name, self.weight_bits)

    @property
    def decoder_parameters(self) -> int:
        """The decoder's weight count, from the config alone (its 3x3 convs and their biases)."""
        def conv(c_in: int, c_out: int, k: int = 9) -> int:
            return c_in * c_out * k + c_out

        n = conv(self.latent_channels, self.stem_channels)
        c_in = self.stem_channels
        for s, c_out in zip(self.strides, self.decoder_channels):
            n += conv(c_in, c_out * s * s)
            c_in = c_out
        if self.head == "dwshuffle":  # depthwise 3x3 (9 weights and a bias a channel), then 1x1
            return n + c_in * 10 + conv(c_in, 3 * self.strides[-1] ** 2, 1)
        return n + conv(c_in, 3 * self.strides[-1] ** 2 if self.head == "shuffle" else 3)

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def canvas(self) -> tuple[int, int]:
        """Decoded canvas (height, width) before the crop."""
        s = self.total_stride
        return self.grid[0] * s, self.grid[1] * s

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def viewer_json(self) -> str:
        """The config as a viewer receives it with the decoder: compact, and without what only
        training and encoding read (the encoder's hash, the training log), since `total` counts
        these bytes in every viewer's download. It loads as the same decoder."""
        fields = dataclasses.asdict(self)
        fields["encoder_sha256"] = ""
        fields["trained"] = {k: v for k, v in self.trained.items() if k in VIEWER_TRAINED}
        return json.dumps(fields, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CodecConfig":
        raw = upgrade_config(json.loads(text))
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        for key in ("grid", "strides", "decoder_channels", "encoder_channels"):
            if key in raw:
                raw[key] = tuple(raw[key])
        cfg = cls(**raw)
        try:  # a config also arrives over the wire: refuse a bad head or width before building on it
            cfg.check()
        except UsageError as e:
            raise ValueError(str(e)) from None
        return cfg



def load_config(model_dir: str | os.PathLike) -> CodecConfig:
    """The config of a model directory; ModelError when it is missing or malformed."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelError(f"{d}: model directory not found")
    try:
        return CodecConfig.from_json((d / CONFIG).read_text())
    except FileNotFoundError:
        raise ModelError(f"{d}: no {CONFIG} (not a trained model directory)") from None
    except (ValueError, TypeError) as e:
        raise ModelError(f"{d / CONFIG}: malformed config ({e})") from None


def read_model_file(path: Path) -> bytes:
    """A model dir's file, or a ModelError naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: missing") from None

"""The quality ladder as named presets: each rung sets the decoder's size, the latent values per
frame and the latent bits together, as the README's ladder on the test movie measured them.

Why presets and not only --capacity: the bottom rung pairs the smallest decoder with half the
latents (256), which is where the ladder's cheapest points came from on the movie; a user who
picks a rung by name should get the rung as measured, not the capacity alone. Any of the three
options given beside --preset still wins, so a preset is a starting point, not a lock.

``auto`` (the default, no preset) picks the capacity by the video's length (codec.train.capacity),
and the latents per frame follow that rung's preset unless --latent-dim is given, so the default
is always one rung of the ladder: ``tiny`` with 256 latents on a clip under 6 seconds at 320x180,
``large`` exactly on a movie of more than 19 seconds. (On a 5-second clip 256 latents came out
-10.6 % in total BD-rate against 512 on the tiny decoder: docs/experiments.md, 2026-12-04.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..format.errors import UsageError
from ..format.quantizer import DEFAULT_BITS
from ..nn.config import CodecConfig


@dataclass(frozen=True)
class Preset:
    """One rung: the TrainOptions fields it sets."""

    capacity: str
    latent_dim: int
    bits: int = DEFAULT_BITS


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", 256),
    "small": Preset("small", 512),
    "medium": Preset("medium", 512),
    "large": Preset("large", 512),
    "huge": Preset("huge", 512),
}


def rung_latent_dim(capacity: str) -> int:
    """Latents per frame a decoder of ``capacity`` trains with when none are given: its preset's."""
    preset = PRESETS.get(capacity)
    return preset.latent_dim if preset else CodecConfig.latent_dim


def preset_options(name: str) -> dict:
    """The TrainOptions fields the preset ``name`` sets; UsageError naming the known ones."""
    try:
        return asdict(PRESETS[name])
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None

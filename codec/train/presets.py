"""The quality ladder as named presets: each rung sets the decoder's size, the latent values per
frame and the latent bits together, as the README's ladder on the test movie measured them.

Why presets and not only --capacity: the bottom rung pairs the smallest decoder with half the
latents (256), which is where the ladder's cheapest points came from on the movie; a user who
picks a rung by name should get the rung as measured, not the capacity alone. Any of the three
options given beside --preset still wins, so a preset is a starting point, not a lock.

``auto`` (the default, no preset) picks only the capacity by the video's length
(codec.train.capacity) at 512 latents and DEFAULT_BITS: on a movie of more than 19 seconds at
320x180 that is the ``large`` rung exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..format.errors import UsageError
from ..format.quantizer import DEFAULT_BITS


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


def preset_options(name: str) -> dict:
    """The TrainOptions fields the preset ``name`` sets; UsageError naming the known ones."""
    try:
        return asdict(PRESETS[name])
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None

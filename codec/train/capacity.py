"""Which rung of the decoder-size ladder (codec.nn.config.CAPACITIES) a video gets by default.

A viewer downloads the whole decoder before the first frame, so its bytes count against the
video's length: on a 14-second clip the "large" decoder alone is about 175 kbit/s, nine times
its latents. ``auto`` therefore takes the largest rung whose decoder, spread over the video,
stays under AUTO_DECODER_KBPS. Longer videos never go past "large": beyond it a movie grows its
decoder scene by scene with parts (``latentcast parts``), which spend bytes only where a scene
gains, where a bigger base would spend them on every scene.
"""

from __future__ import annotations

from ..nn.config import CAPACITIES, CodecConfig

AUTO = "auto"
AUTO_DECODER_KBPS = 128.0
AUTO_LARGEST = "large"


def auto_capacity(width: int, height: int, latent_dim: int, seconds: float, weight_budget_bits: float) -> str:
    """The largest rung up to AUTO_LARGEST whose decoder at ``weight_budget_bits`` per weight,
    spread over ``seconds`` of video, costs at most AUTO_DECODER_KBPS; the smallest if none does."""
    names = list(CAPACITIES)
    chosen = names[0]
    for name in names[: names.index(AUTO_LARGEST) + 1]:
        params = CodecConfig.plan(width, height, latent_dim, capacity=name).decoder_parameters
        if params * weight_budget_bits / max(seconds, 1e-3) / 1000 <= AUTO_DECODER_KBPS:
            chosen = name
    return chosen

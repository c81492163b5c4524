"""What a container records about a movie's sound (codec/audio.py codes it): no av here, so
the store and the server read it with the rest of the header."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from .errors import CorruptContainer

RATE = 48000
# The lowest rate measured at which both test signals keep 12 dB SNR or more, in chunks of 1 s
# and 2 s (benchmarks/audio_rates.py): 32 kbit/s fell to 10.3 dB on the music-like one.
DEFAULT_AUDIO_KBPS = 48


@dataclass(frozen=True)
class AudioInfo:
    """What the container records about a movie's sound."""

    channels: int
    kbps: float
    extradata: bytes  # the OpusHead every chunk's stream shares
    codec: str = "opus"
    rate: int = RATE

    @property
    def layout(self) -> str:
        return "mono" if self.channels == 1 else "stereo"

    def to_json(self) -> dict:
        return {"codec": self.codec, "rate": self.rate, "channels": self.channels, "kbps": self.kbps,
                "extradata": base64.b64encode(self.extradata).decode()}

    @classmethod
    def from_json(cls, meta) -> "AudioInfo":
        """CorruptContainer for anything but what to_json writes."""
        try:
            info = cls(channels=int(meta["channels"]), kbps=float(meta["kbps"]),
                       extradata=base64.b64decode(meta["extradata"], validate=True), codec=str(meta["codec"]),
                       rate=int(meta["rate"]))
        except (KeyError, TypeError, ValueError):
            raise CorruptContainer("the header's audio description is malformed") from None
        if info.codec != "opus" or info.rate != RATE or info.channels not in (1, 2) or len(info.extradata) > 64:
            raise CorruptContainer("the header's audio is not 48 kHz mono or stereo Opus")
        return info

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
# Ingest's "keep the source's packets" choice, in place of a rate (codec.audio.copy_chunks).
AUDIO_COPY = "copy"
# What --audio copy keeps: the codecs PyAV decodes here and browsers' WebCodecs play.
COPYABLE = ("opus", "aac")
CODED_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


@dataclass(frozen=True)
class AudioInfo:
    """What the container records about a movie's sound."""

    channels: int
    kbps: float
    extradata: bytes  # what every chunk's decoder starts from: the OpusHead, or AAC's AudioSpecificConfig
    codec: str = "opus"
    rate: int = RATE  # the coded sample rate; playback is at RATE
    # The source's own packets, kept (--audio copy): its track may end before the picture, so a
    # chunk may decode short and is padded with silence.
    copied: bool = False

    @property
    def codec_name(self) -> str:
        return {"opus": "Opus", "aac": "AAC"}.get(self.codec, self.codec)

    @property
    def layout(self) -> str:
        return "mono" if self.channels == 1 else "stereo"

    def to_json(self) -> dict:
        meta = {"codec": self.codec, "rate": self.rate, "channels": self.channels, "kbps": self.kbps,
                "extradata": base64.b64encode(self.extradata).decode()}
        if self.copied:  # only then, so a re-coded movie's header keeps its bytes
            meta["copied"] = True
        return meta

    @classmethod
    def from_json(cls, meta) -> "AudioInfo":
        """CorruptContainer for anything but what to_json writes."""
        try:
            info = cls(channels=int(meta["channels"]), kbps=float(meta["kbps"]),
                       extradata=base64.b64decode(meta["extradata"], validate=True), codec=str(meta["codec"]),
                       rate=int(meta["rate"]), copied=meta.get("copied", False) is True)
        except (KeyError, TypeError, ValueError):
            raise CorruptContainer("the header's audio description is malformed") from None
        if info.codec not in COPYABLE or info.rate not in CODED_RATES or (info.codec == "opus" and info.rate != RATE) \
                or info.channels not in (1, 2) or len(info.extradata) > 64 or not 0 < info.kbps <= 1024:
            raise CorruptContainer("the header's audio is not mono or stereo Opus (48 kHz) or AAC")
        return info

"""Opus at 24, 32, 48 and 64 kbit/s on a speech-like and a music-like test signal, coded in
latentcast's self-contained chunks: the rate actually spent, SNR against the source, and how
much of the spectrum is kept (the share of the source's band energies, 200 Hz - 16 kHz, that
the output holds within 3 dB).

    python benchmarks/audio_rates.py [--seconds 8] [--chunk-seconds 2]
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from latentcast.codec import audio  # noqa: E402
from synthetic import music_like, speech_like  # noqa: E402


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10((x ** 2).sum() / max(((x - y) ** 2).sum(), 1e-20)))


def spectrum_kept(x: np.ndarray, y: np.ndarray) -> float:
    fx, fy = (np.abs(np.fft.rfft(v.mean(axis=0))) ** 2 for v in (x, y))
    freqs = np.fft.rfftfreq(x.shape[1], 1 / audio.RATE)
    edges = np.geomspace(200, 16000, 25)
    kept = []
    for lo, hi in zip(edges, edges[1:]):
        band = (freqs >= lo) & (freqs < hi)
        ex, ey = fx[band].sum(), fy[band].sum()
        if ex > 1e-9 * fx.sum():
            kept.append(abs(10 * np.log10(max(ey, 1e-20) / ex)) <= 3)
    return float(np.mean(kept))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--chunk-seconds", type=float, default=2.0)
    args = p.parse_args()
    fps = Fraction(25)
    frames = int(args.seconds * fps)
    step = int(args.chunk_seconds * fps)
    spans = audio.chunk_spans(list(range(0, frames, step)), frames, fps)
    print("| signal | asked kbit/s | spent kbit/s | SNR dB | spectrum kept |")
    print("|---|---:|---:|---:|---:|")
    for name, make in (("speech-like", speech_like), ("music-like", music_like)):
        x = make(args.seconds)
        for kbps in (24, 32, 48, 64):
            info, payloads = audio.encode_chunks(x, spans, kbps)
            y = np.concatenate([audio.decode_chunk(info, pl, b - a) for pl, (a, b) in zip(payloads, spans)], axis=1)
            spent = sum(map(len, payloads)) * 8 / args.seconds / 1000
            print(f"| {name} | {kbps} | {spent:.1f} | {snr_db(x, y):.1f} | {100 * spectrum_kept(x, y):.0f} % |")


if __name__ == "__main__":
    main()

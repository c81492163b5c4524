"""What the weight coder buys: bits per weight of each decoder tensor under zstd alone (the
download before the rANS spans), under rANS, as sent, and two bounds: the codes' order-0 entropy
and their entropy with a table per output channel (what a richer model could reach, tables not
counted). Then the time to decode the whole download, both ways, in one run.

    python benchmarks/weight_coding.py MODEL_DIR [MODEL_DIR ...] [--repeat 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load

from latentcast.codec.format import rans
from latentcast.codec.format.compress import compressor
from latentcast.codec.format.decoder_file import _frame_spans, compress_decoder, decompress_decoder


def entropy_bits(codes: np.ndarray) -> float:
    counts = np.bincount(codes.astype(np.int64).ravel() + 128, minlength=256)
    counts = counts[counts > 0]
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def report(model_dir: Path, repeat: int) -> None:
    data = (model_dir / "decoder.safetensors").read_bytes()
    old = b"".join(compressor().compress(data[a:b]) for a, b, _ in _frame_spans(data))
    wire = compress_decoder(data)
    tensors = load(data)
    print(f"\n{model_dir}: file {len(data):,} bytes; zstd alone {len(old):,}, as sent {len(wire):,} "
          f"({100 * (len(wire) / len(old) - 1):+.2f} %)\n")
    print("| tensor | weights | zstd bits/w | rANS bits/w | order-0 entropy | per-channel entropy |")
    print("|---|---:|---:|---:|---:|---:|")
    n_all = 0
    sums = np.zeros(4)
    for name, codes in tensors.items():
        if codes.dtype != np.int8:
            continue
        raw = codes.tobytes()
        z, r = len(compressor().compress(raw)) * 8, len(rans.encode(raw)) * 8
        h0 = entropy_bits(codes)
        hc = sum(entropy_bits(row) for row in codes.reshape(codes.shape[0], -1))
        n = codes.size
        n_all += n
        sums += (z, r, h0, hc)
        print(f"| {name} | {n:,} | {z / n:.3f} | {r / n:.3f} | {h0 / n:.3f} | {hc / n:.3f} |")
    z, r, h0, hc = sums / n_all
    print(f"| all codes | {n_all:,} | {z:.3f} | {r:.3f} | {h0:.3f} | {hc:.3f} |")
    print(f"\nwhole download, all tensors, scales, biases and header: {8 * len(old) / n_all:.3f} bits/weight "
          f"with zstd alone, {8 * len(wire) / n_all:.3f} as sent")
    t_old = best_time(lambda: decompress_decoder(old, len(data)), repeat)
    t_new = best_time(lambda: decompress_decoder(wire, len(data)), repeat)
    print(f"decode the download, best of {repeat}: zstd alone {1e3 * t_old:.1f} ms, as sent {1e3 * t_new:.1f} ms "
          f"({t_new / t_old:.1f}x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    for m in args.models:
        report(m, args.repeat)


if __name__ == "__main__":
    main()

"""How close a movie's latent chunks are to what simple models of their symbols allow: bits per
latent as stored (the chunk payloads), beside the ideal code length of the same symbols under
adaptive models (Krichevsky-Trofimov counts per context, so the cost of learning each table is
in, and no table is sent). An arithmetic coder would come within a fraction of a percent of
these; none is written, so they are estimates to judge whether one is worth writing, never rates.

    python benchmarks/latent_coding.py MOVIE.lcv [MOVIE.lcv ...]

The chunk coding is: each dimension's first symbol, then its differences from frame to frame
(modulo 2^bits), packed and zstd-coded per chunk (codec/format/chunks.py).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from latentcast.codec.format.container import Container


def adaptive_bits(symbols: np.ndarray, alphabet: int, context: np.ndarray | None = None) -> float:
    """Bits an adaptive order-0 model (KT: every count starts at 1/2) spends on ``symbols``, with
    a table per value of ``context`` when one is given; the order within a context does not matter."""
    ctx = np.zeros(symbols.size, np.int64) if context is None else context.ravel().astype(np.int64)
    counts = np.bincount(ctx * alphabet + symbols.ravel(), minlength=(int(ctx.max(initial=0)) + 1) * alphabet)
    counts = counts.reshape(-1, alphabet)
    half = math.lgamma(0.5)
    bits = sum(math.lgamma(n + alphabet / 2) - math.lgamma(alphabet / 2) for n in counts.sum(1) if n)
    bits -= sum(math.lgamma(c + 0.5) - half for c in counts.ravel() if c)
    return bits / math.log(2)


def report(path: str) -> None:
    with Container(path) as c:
        h = c.header
        q = np.concatenate([c.read_chunk(i) for i in range(len(c.chunks))]).astype(np.int64)  # (frames, dim)
        stored = sum(e.length for e in c.chunks) * 8
        starts = np.zeros(h.frames, bool)
        starts[[e.start for e in c.chunks]] = True
    a = 1 << h.bits
    delta = q.copy()
    delta[1:] = (q[1:] - q[:-1]) % a
    later = ~starts  # a chunk's first frame is coded as is: bounds over the differences leave it out
    d, raw = delta[later], q[starts]
    n = q.size
    dims = np.broadcast_to(np.arange(h.latent_dim), q.shape)
    first = adaptive_bits(raw, a, dims[starts])  # the chunks' first frames, in every row below
    prev = np.roll(q, 1, axis=0)[later]
    rows = [
        ("chunk payloads, as stored (zstd)", stored),
        ("symbols as is, one table", adaptive_bits(q, a)),
        ("differences, one table", first + adaptive_bits(d, a)),
        ("differences, a table per dimension", first + adaptive_bits(d, a, dims[later])),
        ("symbols, a table per dimension and previous symbol", first + adaptive_bits(
            q[later], a, dims[later] * a + prev)),
    ]
    print(f"{path}: {h.frames} frames x {h.latent_dim} latents at {h.bits} bits, {len(c.chunks)} chunks")
    print("| model of the symbols | bits/latent | against stored |")
    print("|---|---:|---:|")
    for name, bits in rows:
        print(f"| {name} | {bits / n:.3f} | {bits / stored - 1:+.1%} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("movies", nargs="+")
    for path in p.parse_args().movies:
        report(path)


if __name__ == "__main__":
    main()

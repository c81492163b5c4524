"""latentcast info MOVIE.lcv"""

from __future__ import annotations

import json

from ._common import command, parser


def build_parser():
    p = parser("info", "Print a .lcv container's header and where its bytes go. Every checksum is verified.")
    p.add_argument("movie", metavar="MOVIE.lcv")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def describe(path: str) -> dict:
    """Header, size breakdown and bitrates of a container, after verifying every chunk."""
    from latentcast.codec.format.container import Container
    from latentcast.codec.format.rates import kbps

    with Container(path) as c:
        for i in range(len(c.chunks)):
            c.read_chunk(i)
        h = c.header
        parts = c.breakdown()
        fps = float(h.fps)
        return {
            "file": path, "width": h.width, "height": h.height, "fps": f"{h.fps.numerator}/{h.fps.denominator}",
            "frames": h.frames, "duration_s": round(h.duration, 3), "latent_dim": h.latent_dim, "bits": h.bits,
            "symbols_packed": h.packed, "chunk_frames": h.chunk_frames, "chunks": len(c.chunks),
            "decoder_sha256": h.decoder_sha256,
            "bytes": parts,
            "streaming_kbps": round(kbps(parts["chunk_records"] + parts["chunk_payloads"], h.frames, fps), 3),
            "file_kbps": round(kbps(parts["total"], h.frames, fps), 3),
            "bytes_per_frame": round((parts["chunk_records"] + parts["chunk_payloads"]) / max(1, h.frames), 2),
        }


@command("info")
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    d = describe(args.movie)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    for key, value in d.items():
        if key == "bytes":
            print("bytes:")
            for part, n in value.items():
                print(f"  {part:<15} {n:>12,}")
        else:
            print(f"{key:<17} {value}")
    return 0

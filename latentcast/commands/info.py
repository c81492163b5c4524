"""latentcast info MOVIE.lcv"""

from __future__ import annotations

import json

from ._common import command, parser


def build_parser():
    p = parser("info", "Print a .lcv container's header and where its bytes go. Every checksum is verified.")
    p.add_argument("movie", metavar="MOVIE.lcv")
    p.add_argument("--model", metavar="MODEL_DIR",
                   help="the movie's model: adds the decoder a viewer downloads, for the total rate")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def describe(path: str, model_dir: str | None = None) -> dict:
    """Header, size breakdown and bitrates of a container, after verifying every chunk. The total
    rate adds the decoder as sent, when ``model_dir`` holds the movie's decoder."""
    from latentcast.codec.format.container import Container
    from latentcast.codec.format.errors import ModelError
    from latentcast.codec.format.rates import kbps
    from latentcast.codec.nn.config import load_config
    from latentcast.codec.nn.part_index import part_shas
    from latentcast.codec.runtime.download_size import model_download_bytes

    with Container(path) as c:
        for i in range(len(c.chunks)):
            c.read_chunk(i)
        for i in range(len(c.audio_chunks)):
            c.read_audio(i)
        h = c.header
        parts = c.breakdown()
        fps = float(h.fps)
        decoder_bytes = None
        if model_dir is not None:
            if load_config(model_dir).decoder_sha256 != h.decoder_sha256:
                raise ModelError(f"{model_dir} holds another decoder than the one this movie needs")
            decoder_bytes = model_download_bytes(model_dir, h.parts)  # base and parts, as a viewer downloads them
        streaming = c.streaming_bytes
        return {
            "total_kbps": None if decoder_bytes is None else round(kbps(streaming + decoder_bytes, h.frames, fps), 3),
            "streaming_kbps": round(kbps(streaming, h.frames, fps), 3),
            # the sound, apart: the picture's rates above compare with video codecs'
            "audio_kbps": round(kbps(c.audio_bytes, h.frames, fps), 3),
            "audio": "none" if h.audio is None else _sound_line(h.audio),
            "file": path, "width": h.width, "height": h.height, "fps": f"{h.fps.numerator}/{h.fps.denominator}",
            "frames": h.frames, "duration_s": round(h.duration, 3), "latent_dim": h.latent_dim, "bits": h.bits,
            "symbols_packed": h.packed, "chunk_frames": h.chunk_frames, "chunks": len(c.chunks),
            "decoder_sha256": h.decoder_sha256, "decoder_parts": len(part_shas(h.parts, h.decoder_sha256)),
            "bytes": {**parts, "streaming": streaming, "decoder_as_sent": decoder_bytes},  # base and parts
            "file_kbps": round(kbps(parts["total"], h.frames, fps), 3),
            "streaming_bytes_per_frame": round(streaming / max(1, h.frames), 2),
        }


def _sound_line(info) -> str:
    """How the sound is coded, as info prints it."""
    if info.copied:
        return f"{info.codec_name}, {info.layout}, {info.rate / 1000:g} kHz, " \
            f"the source's own packets ({info.kbps:g} kbit/s)"
    return f"Opus, {info.layout}, 48 kHz, {info.kbps:g} kbit/s asked"


@command("info")
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    d = describe(args.movie, args.model)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    for key, value in d.items():
        if key == "bytes":
            print("bytes:")
            for part, n in value.items():
                print(f"  {part:<15} {'(give --model)' if n is None else format(n, ','):>14}")
        elif value is None:
            print(f"{key:<17} (give --model MODEL_DIR to count the decoder)")
        else:
            print(f"{key:<17} {value}")
    return 0

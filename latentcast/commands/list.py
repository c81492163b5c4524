"""latentcast list --server ADDR"""

from __future__ import annotations

from ._common import add_connection_args, command, open_client, parser


def build_parser():
    p = parser("list", "List the movies a server offers.")
    add_connection_args(p)
    return p


@command("list")
def main(argv: list[str]) -> int:
    from latentcast.client.checks import printable

    args = build_parser().parse_args(argv)
    with open_client(args, retry_s=2.0) as client:
        movies = client.list()
    print(f"{'id':<12}  {'size':>9}  {'fps':>6}  {'frames':>7}  {'duration':>8}  {'total':>7}  {'stream':>7}  "
          f"{'sound':>6}  {'thumbs':>7}  title   (kbit/s: total counts the decoder, stream the side information and "
          "latents, sound the audio, apart; thumbs: the seek thumbnails' kB, which no rate counts)")
    for m in movies:
        print(f"{m.id:<12}  {f'{m.width}x{m.height}':>9}  {m.fps_num / m.fps_den:>6.2f}  {m.frames:>7}  "
              f"{m.duration_s:>7.1f}s  {m.total_kbps:>7.1f}  {m.streaming_kbps:>7.1f}  {m.audio_kbps:>6.1f}  "
              f"{m.thumbnail_bytes / 1000:>6.1f}k  {printable(m.title)}")
    return 0

"""latentcast play MOVIE --server ADDR [--token T] -o OUT"""

from __future__ import annotations

import contextlib
import sys

from ._common import add_connection_args, add_format_arg, add_runtime_arg, command, open_client, parser, stdout_output

EPILOG = """\
The decoder is downloaded once into a cache keyed by its sha256 (LATENTCAST_CACHE or
~/.cache/latentcast) and verified before it is loaded. Then only latents are streamed.

examples:
  latentcast play 'My movie' --server 127.0.0.1:50051 -o movie.mkv
  latentcast play 3f2a9c0d1e4b --server 127.0.0.1:50051 -o - | ffplay -
  latentcast play 'My movie' --server 127.0.0.1:50051 --from 00:01:30 --frames 200 --realtime -o clip.y4m
"""


def build_parser():
    p = parser("play", "Stream a movie's latents from a server and decode them on this machine.", EPILOG)
    p.add_argument("movie", help="movie id or exact title")
    add_connection_args(p)
    p.add_argument("-o", "--output", help=".mkv (lossless), .mp4, .y4m, or - for stdout (Matroska with the sound; "
                                           "--format y4m for YUV4MPEG2); default: straight into ffplay or mpv, "
                                           "whichever is installed")
    add_format_arg(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--start", type=int, default=0, metavar="FRAME", help="first frame (default 0)")
    where.add_argument("--from", dest="from_time", metavar="HH:MM:SS", help="start at this time instead")
    p.add_argument("--frames", type=int, metavar="N", help="play N frames (default: to the end)")
    p.add_argument("--realtime", action="store_true", help="pace output to the movie's fps (counts stalls)")
    p.add_argument("--buffer", type=float, default=1.0, metavar="SECONDS", help="jitter buffer for --realtime "
                   "(default 1 s)")
    p.add_argument("--reference", metavar="VIDEO", help="source video: report PSNR of what was played")
    p.add_argument("--cache-dir", help="decoder cache (default: LATENTCAST_CACHE or ~/.cache/latentcast)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per decoder batch (default 16)")
    add_runtime_arg(p)
    p.add_argument("--retry", type=float, default=30.0, metavar="SECONDS",
                   help="keep reconnecting this long when the server goes away (default 30)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


VIEWERS = (("ffplay", ["-loglevel", "error", "-autoexit", "-"]), ("mpv", ["--really-quiet", "-"]))


def _viewer() -> list[str]:
    """The command line of a player that reads YUV4MPEG2 on stdin; UsageError when none is installed."""
    import shutil

    from latentcast.codec.format.errors import UsageError

    for name, flags in VIEWERS:
        found = shutil.which(name)
        if found:
            return [found, *flags]
    raise UsageError("no -o given and neither ffplay nor mpv is installed: write a file with -o movie.mkv, "
                     "or pipe -o - into a player")


@contextlib.contextmanager
def _piped_into(viewer: list[str] | None):
    """With a viewer, what the player writes to stdout (y4m) goes into the viewer's stdin while
    the block runs; the viewer is waited for at the end, as a window the user closes."""
    if viewer is None:
        yield
        return
    import io
    import subprocess

    proc = subprocess.Popen(viewer, stdin=subprocess.PIPE)
    saved = sys.stdout
    sys.stdout = io.TextIOWrapper(proc.stdin, write_through=True)
    try:
        yield
    finally:
        sys.stdout = saved
        try:
            proc.stdin.close()
        except BrokenPipeError:  # the viewer was closed before the movie ended
            pass
        proc.wait()


@command("play")
def main(argv: list[str]) -> int:
    from latentcast.codec.format.rates import seconds_to_frame

    args = build_parser().parse_args(argv)
    viewer = None
    if args.output is None:
        viewer = _viewer()
        args.output = "-"
    args.output = stdout_output(args)
    with open_client(args, retry_s=args.retry, cache_dir=args.cache_dir) as client, _piped_into(viewer):
        start = args.start
        if args.from_time is not None:
            movie = client.movie(args.movie)
            start = seconds_to_frame(args.from_time, movie.fps_num / movie.fps_den)
        summary = client.play(args.movie, args.output, start=start, count=args.frames, realtime=args.realtime,
                              reference=args.reference, batch=args.batch_size, buffer_s=args.buffer,
                              progress=not args.quiet, runtime=args.runtime)
    for line in summary.lines():
        print(line, file=sys.stderr)
    return 0

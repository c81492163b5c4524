"""latentcast decode MOVIE.lcv --model MODEL_DIR -o OUT"""

from __future__ import annotations

import sys
import time

from ._common import add_format_arg, add_runtime_arg, command, parser, stdout_output


def build_parser():
    p = parser("decode", "Decode a .lcv container back to frames.",
               "outputs: .mkv is lossless RGB (FFV1) with the sound in FLAC, for exact measurement; .mp4 is\n"
               "H.264 and AAC for viewing; - is Matroska on stdout (raw video and the sound) for a player:\n"
               "  latentcast decode movie.lcv --model models/movie -o - | ffplay -\n"
               ".y4m, or - with --format y4m, is YUV4MPEG2: the picture alone, as that format has no sound.")
    p.add_argument("movie", metavar="MOVIE.lcv", help="container to decode")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="model dir holding the matching decoder")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help=".mkv, .mp4, .y4m, or - for stdout (Matroska; --format y4m for YUV4MPEG2)")
    add_format_arg(p)
    p.add_argument("--reference", metavar="VIDEO", help="source video: print PSNR of the decoded frames against it")
    p.add_argument("--start", type=int, default=0, metavar="FRAME", help="first frame to decode (default 0)")
    p.add_argument("--frames", type=int, metavar="N", help="decode N frames (default: to the end)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per decoder batch (default 16)")
    add_runtime_arg(p)
    p.add_argument("--no-chapters", action="store_true",
                   help="leave scene chapters out of .mkv and .mp4 outputs (found from the latents, as "
                        "`latentcast scenes` finds them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


@command("decode")
def main(argv: list[str]) -> int:
    import latentcast
    from latentcast.codec import audio, video
    from latentcast.codec.chapters import chapters_within, container_chapters
    from latentcast.codec.format.container import Container
    from latentcast.codec.progress import progress_bar
    from latentcast.codec.quality import ReferencePSNR

    args = build_parser().parse_args(argv)
    args.output = stdout_output(args)
    video.output_kind(args.output)
    with Container(args.movie) as movie:
        h = movie.header
    count = h.frames - args.start if args.frames is None else min(args.frames, h.frames - args.start)
    frames = latentcast.decode(args.movie, args.model, start=args.start, count=args.frames, batch=args.batch_size,
                               runtime=args.runtime)
    chapters = None
    if not args.no_chapters and video.output_kind(args.output) in ("mkv", "mp4"):
        found = latentcast.scenes(args.movie, args.model)  # those its encoder stored, if it did
        chapters = container_chapters(chapters_within(found.scenes, args.start, args.start + count), h.fps)
    meter = ReferencePSNR(args.reference, (h.width, h.height), args.start) if args.reference else None
    t0 = time.perf_counter()
    done, first = 0, 0.0
    with Container(args.movie) as movie, \
            video.open_writer(args.output, h.width, h.height, h.fps, chapters, audio=h.audio) as writer, \
            progress_bar(not args.quiet, total=max(count, 0), desc="decoding", unit="frame") as bar:
        # each chunk's sound is written once its frames are: the muxer interleaves the two
        sound = audio.container_sound(movie, args.start, args.start + count) if h.audio else iter(())
        piece = next(sound, None)
        for frame in frames:
            writer.write(frame)
            if meter is not None:
                meter.update(frame[None])
            done += 1
            if done == 1:
                first = time.perf_counter() - t0
            bar.update(1)
            while piece is not None and piece[0] <= args.start + done:
                writer.write_audio(piece[1])
                piece = next(sound, None)
    secs = time.perf_counter() - t0
    line = f"decoded {done} frames at {h.width}x{h.height} in {secs:.1f} s ({done / max(secs, 1e-9):.1f} frames/s)"
    if done > 1:
        # The first frame waits for the runtime's import and the decoder's build; the rate after
        # it is what playback runs at.
        line += f"; first frame after {first * 1000:.0f} ms, then {(done - 1) / max(secs - first, 1e-9):.1f} frames/s"
    if meter is not None:
        line += f"; PSNR {meter.psnr:.2f} dB against {args.reference}"
    print(line, file=sys.stderr)
    return 0

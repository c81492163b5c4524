"""latentcast scenes VIDEO|MOVIE.lcv --model MODEL_DIR"""

from __future__ import annotations

import json
import sys

from ._common import command, parser

EPILOG = """\
A cut is a jump in latent space: each dimension measured in its own typical frame-to-frame
step, so motion inside a shot is not a cut. Scenes are runs of neighbouring shots whose mean
latents lie close together. A video goes through the model's encoder. A .lcv container holds
the scenes its encoder found on the float latents; with --sensitivity, --min-shot or
--distance they are found again on its quantized latents (nothing decoded, no torch), where a
cut stands out less: lower --sensitivity there (about 5 at 3 bits).

Chapters: --webvtt writes a WebVTT chapters track, --ffmetadata ffmpeg's metadata file, so
  ffmpeg -i movie.mkv -i chapters.txt -map_metadata 1 -c copy movie-with-chapters.mkv
carries them into the video.

examples:
  latentcast scenes movie.lcv --model models/movie
  latentcast scenes movie.mp4 --model models/movie --json
  latentcast scenes movie.lcv --model models/movie --webvtt chapters.vtt --ffmetadata chapters.txt
"""


def build_parser():
    from latentcast.codec import scenes as sc

    p = parser("scenes", "Shot cuts and scenes of a movie, from its latents.", EPILOG)
    p.add_argument("movie", metavar="VIDEO|MOVIE.lcv")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="the model the movie was (or is) encoded with")
    p.add_argument("--json", action="store_true", help='print {"cuts": [...], "scenes": [{"start", "end", "shots"}]}')
    p.add_argument("--webvtt", metavar="PATH", help="also write the scenes as a WebVTT chapters track")
    p.add_argument("--ffmetadata", metavar="PATH", help="also write them as an ffmpeg metadata file of chapters")
    p.add_argument("--sensitivity", type=float,
                   help=f"a cut is a jump this many times the movie's typical frame step; lower finds more cuts, "
                        f"and more false ones in fast motion (default {sc.DEFAULT_SENSITIVITY:g})")
    p.add_argument("--min-shot", type=float, metavar="SECONDS",
                   help=f"no two cuts closer than this: a flash or a fade counts once "
                        f"(default {sc.DEFAULT_MIN_SHOT_S:g})")
    p.add_argument("--distance", type=float,
                   help=f"neighbouring shots this close (RMS, in each latent's spread over the movie) are one "
                        f"scene; higher: fewer, longer scenes (default {sc.DEFAULT_SCENE_DISTANCE:g})")
    return p


@command("scenes")
def main(argv: list[str]) -> int:
    import latentcast
    from latentcast.codec.chapters import ffmetadata, timecode, webvtt
    from latentcast.codec.format.atomic import write_text_atomic

    args = build_parser().parse_args(argv)
    found = latentcast.scenes(args.movie, args.model, sensitivity=args.sensitivity, min_shot_s=args.min_shot,
                              distance=args.distance)
    if args.webvtt:
        write_text_atomic(args.webvtt, webvtt(found.scenes, found.fps))
    if args.ffmetadata:
        write_text_atomic(args.ffmetadata, ffmetadata(found.scenes, found.fps))
    if args.json:
        print(json.dumps(found.to_json()))
        return 0
    print(f"{len(found.scenes)} scenes, {len(found.cuts) + 1} shots, {found.frames} frames", file=sys.stderr)
    for i, c in enumerate(found.scenes):
        print(f"scene {i + 1:>3}  frames {c.start:>7}-{c.end - 1:<7}  {timecode(c.start / found.fps)} - "
              f"{timecode(c.end / found.fps)}  {c.shots} shot{'s' if c.shots > 1 else ''}")
    return 0

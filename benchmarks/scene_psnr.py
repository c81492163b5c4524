"""Each scene's PSNR against the movie's mean: the issue's "no scene starved" check.

    python benchmarks/test_movie.py -o movie/
    latentcast train movie/movie.mkv --seconds-per-second 20 -o models/movie
    latentcast encode movie/movie.mkv --model models/movie -o movie.lcv
    python benchmarks/scene_psnr.py movie.lcv models/movie movie/movie.mkv movie/scenes.json

Decodes the container, compares it frame by frame with the source, and prints a table of each
source scene's mean per-frame PSNR and its distance from the movie's mean, the way bench
measures PSNR (RGB, mean of per-frame PSNR). A scene more than --starved dB under the mean is
marked.
"""

from __future__ import annotations

import argparse
import json
import sys

import latentcast
from latentcast.codec import video
from latentcast.codec.quality import PSNRMeter


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("movie", help="a .lcv container of the video")
    p.add_argument("model")
    p.add_argument("video", help="the source the container was encoded from")
    p.add_argument("scenes", help="scenes.json from benchmarks/test_movie.py")
    p.add_argument("--starved", type=float, default=3.0,
                   help="dB under the movie's mean that marks a scene as starved (default 3, the issue's)")
    args = p.parse_args(argv)
    with open(args.scenes) as f:
        scenes = json.load(f)["scenes"]
    movie = PSNRMeter()
    for decoded, reference in zip(latentcast.decode(args.movie, args.model), video.read_frames(args.video)):
        movie.update(reference, decoded)
    mean = movie.psnr
    spans = [(s["start"], s["start"] + s["frames"]) for s in scenes]
    print(f"{args.movie}: {mean:.2f} dB over {len(movie.mses)} frames\n")
    print("| scene | frames | PSNR | against the mean |")
    print("|---|---|---:|---:|")
    for s, psnr in zip(scenes, movie.span_psnr(spans)):
        mark = " (starved)" if psnr < mean - args.starved else ""
        print(f"| {s['source']} | {s['start']}-{s['start'] + s['frames'] - 1} | {psnr:.2f} | "
              f"{psnr - mean:+.2f}{mark} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

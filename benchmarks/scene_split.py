"""How well codec.scenes finds a movie's cuts, against the cuts it was built with.

    python benchmarks/test_movie.py -o movie/
    latentcast train movie/movie.mkv --seconds-per-second 20 -o models/movie
    python benchmarks/scene_split.py models/movie movie/movie.mkv movie/scenes.json

Prints, per sensitivity, the cuts found, how many of the movie's source boundaries are found
within --tolerance frames, and how many other cuts were found: shot changes inside a source
clip (real cuts the scene list does not name) or false ones, which only a look tells apart.
"""

from __future__ import annotations

import argparse
import json
import sys

from latentcast.codec import video
from latentcast.codec.nn.encode import latents_of
from latentcast.codec.nn.weights import load_encoder
from latentcast.codec.scenes import DEFAULT_SENSITIVITY, scene_cuts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("video")
    p.add_argument("scenes", help="scenes.json from benchmarks/test_movie.py")
    p.add_argument("--tolerance", type=int, default=1, help="frames a found cut may be off (default 1)")
    args = p.parse_args(argv)
    with open(args.scenes) as f:
        truth = [s["start"] for s in json.load(f)["scenes"][1:]]
    encoder = load_encoder(args.model)
    cfg = encoder.cfg
    latents = latents_of(video.read_batches(args.video, (cfg.width, cfg.height), 32), encoder)
    fps = float(video.probe(args.video).fps)
    print(f"source boundaries: {truth}\n")
    print("| sensitivity | found | source boundaries found | other cuts |")
    print("|---|---|---|---|")
    for s in sorted({4.0, 8.0, DEFAULT_SENSITIVITY, 16.0}):
        found = scene_cuts(latents, fps, sensitivity=s)
        hits = sum(any(abs(f - t) <= args.tolerance for f in found) for t in truth)
        false = sum(not any(abs(f - t) <= args.tolerance for t in truth) for f in found)
        print(f"| {s:g}{' (default)' if s == DEFAULT_SENSITIVITY else ''} | {found} | {hits} of {len(truth)} | "
              f"{false} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

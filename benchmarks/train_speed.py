"""Training steps per second on this machine, for each way of running a step, against the default.

    python benchmarks/train_speed.py [VIDEO] [--seconds 40] [--capacity large] [--rounds 2] [-o DIR]

A budget in seconds (``--minutes``, ``--seconds-per-second``) buys as many steps as the CPU
runs, and that differs threefold between machines (AMX and bf16 on one, AVX2 alone on another),
so a PSNR measured at "20 s/s" is only comparable with the step count beside it. This runs a
short real training (the whole schedule, at ``--seconds``) once per configuration, each in its
own process, rounds interleaved so that a noisy neighbour hits every configuration alike, and
prints steps/s and the ratio against the default of the same round:

- default: ``latentcast train`` as it is (its ``--precision auto``, channels-last, torch's threads)
- contiguous: NCHW steps instead of channels-last
- bf16, fp32: the precision forced either way
- 1 thread

The video defaults to the bundled sample, cut to ``--frames``. Writes ``DIR/train_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CONFIGS = {
    "default": {},
    "contiguous": {"channels_last": False},
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "1 thread": {"threads": 1},
}
SAMPLE = Path(__file__).resolve().parents[1] / "latentcast" / "samples" / "cockatoo-320x180.mp4"


def run_once(video: str, out: Path, seconds: float, capacity: str, frames: int, options: dict) -> tuple[float, str]:
    """Steps per second of one short training in a fresh process, and the hardware it ran on."""
    kwargs = {"minutes": seconds / 60, "capacity": capacity, "max_frames": frames, **options}
    code = ("import json, sys, latentcast\n"
            f"s = latentcast.train({video!r}, {str(out)!r}, **{kwargs!r})\n"
            "json.dump({k: s[k] for k in ('steps', 'seconds', 'hardware')}, sys.stdout)\n")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["steps"] / result["seconds"], result["hardware"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", nargs="?", default=str(SAMPLE), help="video to train on (default: the bundled sample)")
    p.add_argument("--seconds", type=float, default=40, help="training budget of each run (default 40)")
    p.add_argument("--capacity", default="large", help="decoder rung (default large, the movie default)")
    p.add_argument("--frames", type=int, default=200, help="frames of the video to train on (default 200)")
    p.add_argument("--rounds", type=int, default=2, help="times each configuration runs (default 2)")
    p.add_argument("--only", nargs="+", choices=list(CONFIGS), help="configurations to run (default all)")
    p.add_argument("-o", "--output", default="train-speed", help="work dir (default ./train-speed)")
    args = p.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    names = ["default", *[n for n in (args.only or CONFIGS) if n != "default"]]
    rates: dict[str, list[float]] = {n: [] for n in names}
    hardware: dict[str, str] = {}
    for r in range(args.rounds):
        for name in names:
            work = out / f"{name.replace(' ', '-')}-{r}"
            rate, hardware[name] = run_once(args.video, work, args.seconds, args.capacity, args.frames, CONFIGS[name])
            rates[name].append(rate)
            print(f"round {r + 1}: {name}: {rate:.1f} steps/s", file=sys.stderr, flush=True)
    rows = [{"config": n, "hardware": hardware[n], "steps_per_s": statistics.median(v),
             # per round against that round's default, then the median: the machine drifts between rounds
             "ratio": statistics.median(a / b for a, b in zip(v, rates["default"]))} for n, v in rates.items()]
    (out / "train_speed.json").write_text(json.dumps({"capacity": args.capacity,
                                                      "seconds": args.seconds, "rows": rows, "runs": rates}, indent=2))
    print(f"{hardware['default']}; {args.capacity}, {args.seconds:g} s runs, median of {args.rounds}\n"
          "| config | steps/s | against default |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['config']} | {row['steps_per_s']:.1f} | {row['ratio']:.2f}x |")


if __name__ == "__main__":
    main()

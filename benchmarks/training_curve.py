"""PSNR against training time: one `latentcast train` per budget, then a plot.

    python benchmarks/training_curve.py VIDEO [--size 320x180] [--minutes 1 2 5 10 30] [--capacity auto] [-o DIR]
                                              [--weight-budget BITS] [--weight-qat-from FRACTION]
    python benchmarks/training_curve.py MOVIE --seconds-per-second 2 5 10 20 -o DIR   # budgets that scale

Each budget is its own run from scratch (the learning-rate schedule is fitted to the budget,
so a 10-minute run is not the first third of a 30-minute one). Runs go one after another so
they do not share the CPU. Budgets already trained in DIR are reused. Writes
``DIR/training_curve.json`` and ``DIR/training_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def train_once(video: str, size: str, budget: float, out: Path, capacity: str = "auto",
               extra: tuple[str, ...] = (), unit: str = "minutes") -> dict:
    """One run at ``budget`` in ``unit``: "minutes", or "seconds-per-second" of the video."""
    model = out / (f"m{budget:g}" if unit == "minutes" else f"s{budget:g}")
    config = model / "config.json"
    if not config.exists():
        subprocess.run([sys.executable, "-m", "latentcast", "train", video, "--size", size, f"--{unit}", str(budget),
                        "--capacity", capacity, *extra, "-o", str(model), "-q"], check=True, stdout=subprocess.DEVNULL)
    t = json.loads(config.read_text())["trained"]
    row = {KEYS[unit]: budget, "steps": t["steps"], "psnr_float": t["psnr_float"],
           "psnr_quantized": t["psnr_quantized"], "model": str(model), "hardware": t.get("hardware")}
    print(f"{budget:g} {UNITS[unit]}: {row['steps']} steps, {row['psnr_float']:.2f} dB float, "
          f"{row['psnr_quantized']:.2f} dB shipped", file=sys.stderr, flush=True)
    return row


UNITS = {"minutes": "min", "seconds-per-second": "s/s"}
KEYS = {"minutes": "minutes", "seconds-per-second": "seconds_per_second"}  # a row's budget, as train names it
AXIS = {"minutes": "training budget (minutes, 2 CPU cores)",
        "seconds-per-second": "training budget (seconds per second of video, 2 CPU cores)"}


def plot(rows: list[dict], title: str, path: Path, unit: str = "minutes") -> None:
    import matplotlib

    from latentcast.codec.eval.report import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    key = KEYS[unit]
    xs = [r[key] for r in rows]
    ax.plot(xs, [r["psnr_quantized"] for r in rows], "o-", label="shipped (quantized latents and weights)")
    ax.plot(xs, [r["psnr_float"] for r in rows], "x--", alpha=0.6, label="float latents")
    # Steps per minute swing by half between runs on a shared machine; the counts show it.
    for r in rows:
        ax.annotate(f"{r['steps'] / 1000:.1f}k steps", (r[key], r["psnr_float"]), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=7, color="grey")
    ax.margins(x=0.08, y=0.12)
    best = rows[-1]["psnr_quantized"]
    ax.axhline(best - 0.5, color="grey", lw=0.8, ls=":", label=f"{xs[-1]:g} {UNITS[unit]} PSNR - 0.5 dB")
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log axes label 3x10^0 and the like
    ax.set_xlabel(AXIS[unit])
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video")
    p.add_argument("--size", default="320x180", help="training size (default 320x180)")
    budgets = p.add_mutually_exclusive_group()
    budgets.add_argument("--minutes", type=float, nargs="+", help="budgets in minutes (default 1 2 5 10 30)")
    budgets.add_argument("--seconds-per-second", type=float, nargs="+",
                         help="budgets in seconds per second of the video instead, as train takes them")
    p.add_argument("--capacity", default="auto", help="decoder size, as latentcast train takes it (default auto)")
    p.add_argument("-o", "--output", default="training-curve", help="work dir (default ./training-curve)")
    p.add_argument("--weight-budget", help="bits per decoder weight, as latentcast train takes it (default train's)")
    p.add_argument("--weight-qat-from", help="where the weight codes start training (default train's)")
    args = p.parse_args()
    extra = tuple(arg for flag, value in (("--weight-budget", args.weight_budget),
                                          ("--weight-qat-from", args.weight_qat_from)) if value
                  for arg in (flag, value))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    unit = "seconds-per-second" if args.seconds_per_second else "minutes"
    chosen = args.seconds_per_second or args.minutes or [1, 2, 5, 10, 30]
    rows = [train_once(args.video, args.size, b, out, args.capacity, extra, unit) for b in sorted(chosen)]
    (out / "training_curve.json").write_text(json.dumps(rows, indent=2))
    # A budget in seconds is only comparable on the same hardware; models trained before the
    # summary recorded it say nothing.
    hardware = ", ".join(sorted({r["hardware"] for r in rows if r["hardware"]}))
    where = f"on {hardware}" if hardware else "(the models do not record their hardware)"
    plot(rows, f"{Path(args.video).name} at {args.size}: PSNR after each training budget\n{where}",
         out / "training_curve.png", unit)
    key = KEYS[unit]
    print(f"| {unit} | steps | PSNR float | PSNR shipped |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r[key]:g} | {r['steps']} | {r['psnr_float']:.2f} | {r['psnr_quantized']:.2f} |")


if __name__ == "__main__":
    main()

"""A ladder of models against one model, on total bytes: the issue's short-clip check.

    S=latentcast/samples/cockatoo-320x180.mp4
    latentcast train $S --minutes 10 --threads 1 --capacity large --weight-budget 4.6 --weight-qat-from 1 -o m/l46
    latentcast train $S --minutes 10 --threads 1 --preset large -o m/large      # and tiny ... huge
    latentcast bench $S --model m/l46 --model m/tiny --model m/small --model m/medium --model m/large \\
        --model m/huge --codecs '' -o R
    python benchmarks/ladder_vs_model.py R --baseline l46 --ladder tiny small medium large huge

The short-clip target asks that, at equal or better PSNR, the ladder's total bytes be at most
half of what one fixed model (the baseline) needs. This reads a bench's results.json and prints
two views of that:

- the Bjøntegaard delta rate of the ladder's curve (every non-dominated point of the ladder's
  models pooled, as bench's "ladder" curve) against the baseline's curve, over their common
  PSNR range, with the point counts;
- for each of the baseline's own points, the cheapest ladder point at equal or better PSNR and
  the ratio of their rates: the target read point by point.

A ladder given as several ``--ladder`` sets (``--ladder tiny small --ladder tiny small huge``)
prints a row for each, since a delta depends on which points span the range.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from latentcast.codec.eval.bd import bd_rate, rd_hull
from latentcast.codec.eval.report import LEARNED, pyplot, save_png


def curve(points: list[dict], models: set[str], accounting: str) -> list[tuple[float, float]]:
    """(kbit/s, PSNR) of every point of ``models`` under ``accounting``."""
    return [(p["kbps"], p["psnr"]) for p in points
            if p["codec"] == LEARNED and p["model"] in models and p["accounting"] == accounting]


def cheapest_at_least(points: list[tuple[float, float]], psnr: float) -> tuple[float, float] | None:
    better = [p for p in points if p[1] >= psnr]
    return min(better) if better else None


def plot(points: list[dict], baseline: str, ladders: list[list[str]], models: set[str], accounting: str,
         path: str) -> None:
    """The baseline's curve, each ladder's (its non-dominated points), and every model's points faintly."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for model in sorted(models):
        r, q = zip(*sorted(curve(points, {model}, accounting)))
        ax.plot(r, q, "o", ms=3, color="0.7")
        top = max(range(len(q)), key=q.__getitem__)
        ax.annotate(model, (r[top], q[top]), fontsize=7, color="0.4", xytext=(3, 3), textcoords="offset points")
    r, q = rd_hull(*zip(*curve(points, {baseline}, accounting)))
    ax.plot(r, q, "s-", color="tab:red", lw=2, label=f"{baseline} alone")
    for i, ladder in enumerate(ladders):  # the first widest and underneath, so a ladder that adds rungs shows both
        r, q = rd_hull(*zip(*curve(points, set(ladder), accounting)))
        ax.plot(r, q, "o-", lw=1.5 + 2 * (len(ladders) - 1 - i), ms=4, zorder=2 + i,
                label="ladder: " + " ".join(ladder))
    ax.set_xscale("log")
    ax.set_xlabel(f"{accounting} bitrate (kbit/s, log scale)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="a bench output directory (its results.json)")
    p.add_argument("--baseline", required=True, help="the one model the ladder is judged against (its directory name)")
    p.add_argument("--ladder", nargs="+", action="append", required=True, metavar="MODEL",
                   help="the ladder's models (directory names); repeat for several ladders")
    p.add_argument("--plot", metavar="PNG", help="also draw the baseline's curve and each ladder's to this file")
    p.add_argument("--accounting", default="total", choices=("total", "streaming"),
                   help="which bytes count (default total: the decoder spread over the clip, plus streaming)")
    args = p.parse_args(argv)
    path = Path(args.results) / "results.json"
    try:
        points = json.loads(path.read_text())["points"]
    except (OSError, ValueError, KeyError) as e:
        print(f"ladder_vs_model: cannot read {path}: {e}", file=sys.stderr)
        return 1
    known = {q["model"] for q in points if q["codec"] == LEARNED}
    models = {m for ladder in args.ladder for m in ladder}
    missing = ({args.baseline} | models) - known
    if missing:
        print(f"ladder_vs_model: {path} has no model {', '.join(sorted(missing))} "
              f"(it has {', '.join(sorted(known))})", file=sys.stderr)
        return 1
    base = curve(points, {args.baseline}, args.accounting)
    base_r, base_p = rd_hull(*zip(*base))
    print(f"baseline {args.baseline} ({args.accounting}): {len(base_r)} non-dominated points, "
          f"{min(base_p):.2f}-{max(base_p):.2f} dB")
    print("| ladder | points | PSNR range | BD-rate against the baseline |")
    print("|---|---:|---|---:|")
    for ladder in args.ladder:
        r, q = rd_hull(*zip(*curve(points, set(ladder), args.accounting)))
        delta = bd_rate(base_r, base_p, r, q)
        shown = "no overlap" if delta is None else f"{delta:+.1f} %"
        print(f"| {' '.join(ladder)} | {len(r)} | {min(q):.2f}-{max(q):.2f} dB | {shown} |")
    pooled = curve(points, models, args.accounting)
    print(f"\nthe baseline's points against the cheapest ladder point at equal or better PSNR "
          f"(every --ladder model pooled, {args.accounting} kbit/s):")
    print("| baseline | ladder | ratio |")
    print("|---|---|---:|")
    for rate, psnr in zip(base_r, base_p):
        best = cheapest_at_least(pooled, psnr)
        shown = "none reaches it | " if best is None else f"{best[1]:.2f} dB @ {best[0]:.1f} | {best[0] / rate:.2f}"
        print(f"| {psnr:.2f} dB @ {rate:.1f} | {shown} |")
    if args.plot:
        plot(points, args.baseline, args.ladder, models, args.accounting, args.plot)
        print(f"\nwrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a benchmark run leaves: results.json, results.csv, the RD plot, and a markdown table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..format.atomic import atomic_path, write_text_atomic
from ..format.errors import UsageError
from .bd import rd_hull

LEARNED = "latentcast"


def pyplot():
    """matplotlib's pyplot on the Agg backend, or a UsageError that names the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("bench's plots need matplotlib: pip install 'latentcast[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


CSV_FIELDS = ["codec", "preset", "crf", "bits", "accounting", "model", "bytes", "kbps", "bpp", "psnr", "psnr_mse",
              "ms_ssim", "y_psnr", "worst_scene_db", "enc_fps", "dec_fps"]


def write_results(out: Path, results: dict) -> None:
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS + ["clip", "width", "height", "frames", "fps"],
                            extrasaction="ignore")
    writer.writeheader()
    for p in results["points"]:
        writer.writerow({**p, **{k: results[k] for k in ("clip", "width", "height", "frames", "fps")}})
    write_text_atomic(out / "results.csv", buf.getvalue())
    plot([results], out / "rd.png")


def curve_label(p: dict) -> str:
    if p["codec"] == LEARNED:
        return f"latentcast {p['model']} ({p['accounting']})"
    return f"{p['codec']} {p['preset']}"


def plot(runs: list[dict], path: Path, labels: list[str] | None = None) -> None:
    """kbit/s (log) against PSNR, one curve per codec configuration, for one or more runs."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # enough distinct colours for a ladder of models
    for r, run in enumerate(runs):
        curves: dict[str, list[dict]] = {}
        for p in run["points"]:
            curves.setdefault(curve_label(p), []).append(p)
        prefix = f"{labels[r]}: " if labels and len(runs) > 1 else ""
        for label, pts in curves.items():
            pts = sorted(pts, key=lambda p: p["kbps"])
            learned = pts[0]["codec"] == LEARNED
            style = "-o" if learned else "--s"
            if learned and pts[0]["accounting"] == "total":
                style = ":o"
            ax.plot([p["kbps"] for p in pts], [p["psnr"] for p in pts], style, markersize=4, label=prefix + label)
        total = [p for p in run["points"] if p["codec"] == LEARNED and p["accounting"] == "total"]
        if len({p["model"] for p in total}) > 1:  # a ladder: the best of its models, as a viewer pays
            rates, psnrs = rd_hull([p["kbps"] for p in total], [p["psnr"] for p in total])
            ax.plot(rates, psnrs, "-", color="black", linewidth=2.5, alpha=0.6,
                    label=prefix + "latentcast ladder (total)")
    ax.set_xscale("log")
    ax.set_xlabel("bitrate (kbit/s, log scale)")
    ax.set_ylabel("PSNR (dB, RGB, mean over frames)")
    first = runs[0]
    ax.set_title(f"{first['clip']} at {first['width']}x{first['height']}, {first['frames']} frames")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)


def save_png(fig, path: str | Path) -> None:
    """Lay out ``fig``, write it to ``path`` as PNG atomically, and free it."""
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)


def scene_line(results: dict) -> list[str]:
    scenes = results.get("scenes") or []
    if len(scenes) < 2:
        return []
    return [f"{len(scenes)} scenes; worst scene: the PSNR of a point's worst scene against its mean over the movie"]


def markdown(results: dict) -> str:
    """The points and the BD table as markdown."""
    def f(v, spec):
        return "" if v is None else format(v, spec)

    lines = [f"{results['clip']}: {results['width']}x{results['height']}, {results['frames']} frames at "
             f"{results['fps']:g} fps", *scene_line(results), "",
             "| codec | preset | crf/bits | accounting | kbit/s | bpp | PSNR | worst scene | PSNR(MSE) | MS-SSIM "
             "| Y-PSNR | enc fps | dec fps |", "|" + "---|" * 13]
    for p in sorted(results["points"],
                    key=lambda p: (p["codec"] != LEARNED, p["accounting"] != "total", curve_label(p), p["kbps"])):
        knob = f"crf {p['crf']}" if p["crf"] is not None else f"{p['bits']} bits"
        codec = p["codec"] if p["codec"] != LEARNED else f"latentcast {p['model']}"
        lines.append(f"| {codec} | {p['preset'] or ''} | {knob} | {p['accounting'] or ''} | {p['kbps']:.1f} | "
                     f"{p['bpp']:.4f} | {p['psnr']:.2f} | {f(p.get('worst_scene_db'), '+.2f')} | "
                     f"{p['psnr_mse']:.2f} | {f(p['ms_ssim'], '.4f')} | {p['y_psnr']:.2f} | {p['enc_fps']:.1f} | "
                     f"{p['dec_fps']:.1f} |")
    refined = sorted({p["refine_steps"] for p in results["points"] if p.get("refine_steps") is not None})
    if refined:
        lines += ["", "latentcast's codes: " + ", ".join(
            f"refined by {n} steps against its decoder" if n else "as the encoder gives them (not refined)"
            for n in refined) + " (--refine-steps)"]
    if results.get("audio_kbps") is not None:
        lines += ["", f"sound: {results['audio_kbps']:.1f} kbit/s of Opus ({results['audio_kbps_asked']:g} asked), "
                  "apart from every rate above: the curves compare picture with picture, as the classical codecs "
                  "run without sound"]
    elif "audio_kbps" in results:
        lines += ["", "sound: none (a silent source)"]
    if results.get("bd"):
        lines += ["", "| anchor | test | BD-rate | BD-PSNR | points (anchor, test) | note |",
                  "|---|---|---|---|---|---|"]
        for row in results["bd"]:
            rate = f"{row['bd_rate_percent']:+.1f}%" if row["bd_rate_percent"] is not None else "no overlap"
            dp = f"{row['bd_psnr_db']:+.2f} dB" if row["bd_psnr_db"] is not None else "no overlap"
            points = f"{row.get('anchor_points', '?')}, {row.get('test_points', '?')}"
            lines.append(f"| {row['anchor']} | {row['test']} | {rate} | {dp} | {points} | {row.get('note') or ''} |")
    return "\n".join(lines)

"""Decode speed of the browser player in headless Chromium (ONNX Runtime Web, WASM).

    python benchmarks/browser_decode.py [--sizes 320x180,1280x720] [--frames 60] [--capacity large]

For each size: a model with freshly initialised weights at the default architecture (speed does
not depend on their values), a generated clip ingested with it, `serve --http` on loopback, and
the /watch page in Chromium. It reports the page's own decode figure (ONNX Runtime Web's run
alone) and the end-to-end rate of showing every frame in turn (chunk fetch, zstd, dequantize,
run, draw), beside the native ONNX Runtime path on the same frames for a ratio in one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import latentcast  # noqa: E402
from browser import Browser, chromium_binary  # noqa: E402
from latentcast.codec import video  # noqa: E402
from latentcast.codec.nn.config import CodecConfig  # noqa: E402
from latentcast.codec.nn.model import build_model  # noqa: E402
from latentcast.codec.nn.weights import save_model  # noqa: E402
from latentcast.server.app import ServerOptions, run_server  # noqa: E402
from latentcast.server.store import Store  # noqa: E402


def _clip(path: Path, size: tuple[int, int], frames: int) -> Path:
    rng = np.random.default_rng(0)
    w, h = size
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), np.uint8)
    with video.open_writer(str(path), w, h, 25) as out:
        for t in range(frames):
            img = np.kron(np.roll(base, t, axis=1), np.ones((8, 8, 1), np.uint8))[:h, :w]
            out.write(np.ascontiguousarray(img))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="320x180,1280x720")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--capacity", default="large")
    args = p.parse_args()
    binary = chromium_binary()
    if binary is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    print("| size | page decode frames/s (ORT Web run) | page frames/s end to end | native ORT frames/s | "
          "native / page |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes.split(","):
            size = tuple(map(int, spec.split("x")))
            work = Path(tmp) / spec
            torch.manual_seed(0)
            save_model(build_model(CodecConfig.plan(*size, capacity=args.capacity)), work / "model")
            clip = _clip(work.with_suffix(".mkv"), size, args.frames)
            store = Store(work / "store", create=True)
            rec = store.ingest(str(clip), work / "model", title=spec, progress=False)
            frames = latentcast.decode(store.movie_path(rec.id), work / "model", runtime="onnx")
            next(frames)  # the session's build is not decode time
            t0 = time.perf_counter()
            n = sum(1 for _ in frames)
            native = n / (time.perf_counter() - t0)
            with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
                browser = Browser(binary, timeout_s=600)
                try:
                    browser.goto(f"{srv.http_url}/watch/{rec.id}")
                    browser.wait_for("window.latentcast.ready.then(p => !!p)", timeout_s=300)
                    wall = browser.evaluate(f"""window.latentcast.ready.then(async p => {{
                        p.decoded = 0; p.decodeSeconds = 0;
                        const t0 = performance.now();
                        for (let f = 0; f < {args.frames}; f++) await p.showFrame(f);
                        return {args.frames} / ((performance.now() - t0) / 1000);
                    }})""")
                    run_fps = browser.evaluate("window.latentcast.ready.then(p => p.decodeFps())")
                finally:
                    browser.close()
            print(f"| {spec} | {run_fps:.1f} | {wall:.1f} | {native:.1f} | {native / wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()

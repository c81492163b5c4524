"""Time to first frame over gRPC and over HTTP, side by side in one run.

    python benchmarks/first_frame.py [--store STORE --movie ID] [--rounds 5] [--fresh-rounds 5]

Without --store it builds one: the bundled sample ingested with a freshly initialised model at
320x180 (timing does not depend on the weights). Each round plays the first 50 frames over each
transport, alternating, once with an empty decoder cache (the decoder downloaded: a first view)
and once with it warm. The figure is the player's own: from the request for the movie's
description to the first frame written. Medians are reported.

Then, in a fresh process each time (`latentcast play` over gRPC, nothing cached), the player's
own figure and the command's wall time, beside a baseline in the same run: the same command
with the onnx package imported on the runtime's warm-up thread, which is what the player did
before it wrote its ONNX graph without onnx (and the graph then needed it).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch

import latentcast
from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.nn.model import build_model
from latentcast.codec.nn.weights import save_model
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.store import Store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store")
    p.add_argument("--movie")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--fresh-rounds", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            store, movie = Store(args.store), args.movie
        else:
            torch.manual_seed(0)
            save_model(build_model(CodecConfig.plan(320, 180)), Path(tmp) / "model")
            sample = resources.files("latentcast") / "samples" / "cockatoo-320x180.mp4"
            store = Store(Path(tmp) / "store", create=True)
            movie = store.ingest(str(sample), Path(tmp) / "model", title="sample", progress=False).id
        times: dict[tuple[str, str], list[float]] = {}
        with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
            for r in range(args.rounds):
                for name, address in (("gRPC", srv.address), ("HTTP", srv.http_url)):
                    cache = Path(tmp) / f"cache-{name}-{r}"
                    for state in ("cold", "warm"):
                        with latentcast.Client(address, cache_dir=cache) as client:
                            s = client.play(movie, Path(tmp) / "out.y4m", count=50)
                        times.setdefault((name, state), []).append(s.first_frame_s * 1000)
            fresh: dict[str, list[tuple[float, float]]] = {}
            for r in range(args.fresh_rounds):
                for name, prelude in (("as installed", ""),
                                      ("baseline: onnx imported in the warm-up", ONNX_ON_A_THREAD)):
                    fresh.setdefault(name, []).append(_fresh_play(prelude, srv.address, movie, Path(tmp) / f"f{r}"))
    print(f"| transport | first view (decoder downloaded) ms | decoder cached ms |  ({args.rounds} rounds, median)")
    print("|---|---:|---:|")
    for name in ("gRPC", "HTTP"):
        cold, warm = (statistics.median(times[(name, state)]) for state in ("cold", "warm"))
        print(f"| {name} | {cold:.0f} | {warm:.0f} |")
    print(f"\n| a fresh `latentcast play`, gRPC, nothing cached | first frame ms | wall s |  "
          f"({args.fresh_rounds} rounds, median)")
    print("|---|---:|---:|")
    for name, runs in fresh.items():
        print(f"| {name} | {statistics.median(f for f, _ in runs):.0f} | {statistics.median(w for _, w in runs):.2f} |")


# The warm-up as it was: the runtime's import started on a thread just before the first RPC,
# with onnx beside onnxruntime.
ONNX_ON_A_THREAD = """import importlib, threading
from latentcast.codec.runtime import backends
_warm_up = backends.warm_up
def warm_up(*args):
    threading.Thread(target=importlib.import_module, args=("onnx",), daemon=True).start()
    _warm_up(*args)
backends.warm_up = warm_up
"""


def _fresh_play(prelude: str, address: str, movie: str, cache: Path) -> tuple[float, float]:
    """(the player's first-frame ms, the command's wall seconds) of one play in a new process."""
    code = prelude + "\nimport sys; from latentcast.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "play", movie, "--server", address, "--cache-dir", str(cache),
           "--frames", "50", "-o", str(cache) + ".y4m"]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    found = re.search(r"first frame\s+(\d+) ms", res.stdout + res.stderr)
    if res.returncode or not found:
        raise SystemExit(f"play failed: {(res.stderr or res.stdout)[-500:]}")
    return float(found.group(1)), wall


if __name__ == "__main__":
    main()

"""Time to first frame over gRPC and over HTTP, side by side in one run.

    python benchmarks/first_frame.py [--store STORE --movie ID] [--rounds 5]

Without --store it builds one: the bundled sample ingested with a freshly initialised model at
320x180 (timing does not depend on the weights). Each round plays the first 50 frames over each
transport, alternating, once with an empty decoder cache (the decoder downloaded: a first view)
and once with it warm. The figure is the player's own: from the request for the movie's
description to the first frame written. Medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
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
    print(f"| transport | first view (decoder downloaded) ms | decoder cached ms |  ({args.rounds} rounds, median)")
    print("|---|---:|---:|")
    for name in ("gRPC", "HTTP"):
        cold, warm = (statistics.median(times[(name, state)]) for state in ("cold", "warm"))
        print(f"| {name} | {cold:.0f} | {warm:.0f} |")


if __name__ == "__main__":
    main()

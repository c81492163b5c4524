"""The decoder network alone at one size, default architecture and fresh weights: ONNX Runtime
at one frame per run against 4 and 8, and with its thread spinning off, in alternating rounds.

    python benchmarks/ort_batch.py [1280x720] [--frames 32] [--rounds 3]

It answers whether handing ONNX Runtime several frames at once, or letting its idle threads
sleep, would speed the viewer's decode; the command's own loop is left out.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from decode_speed import _fresh_model  # benchmarks/ is on the path when a script here runs

from latentcast.codec.format.decoder_state import load_state_verified
from latentcast.codec.nn.config import DECODER, DEFAULT_CAPACITY, load_config
from latentcast.codec.runtime.backends import session_options
from latentcast.codec.runtime.onnx_graph import decoder_graph


def _session(graph: bytes, spin: bool) -> ort.InferenceSession:
    options = session_options()  # the viewer's own settings
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _fps(session: ort.InferenceSession, latents: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(latents), batch):
        session.run(None, {"latents": latents[i : i + batch]})
    return len(latents) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("size", nargs="?", default="1280x720")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _fresh_model((width, height), DEFAULT_CAPACITY, Path(tmp))
        cfg = load_config(model_dir)
        state = load_state_verified((model_dir / DECODER).read_bytes(), cfg.decoder_sha256, str(model_dir))
    graph = decoder_graph(cfg, state)
    spinning, sleeping = _session(graph, True), _session(graph, False)
    latents = np.random.default_rng(0).normal(size=(args.frames, cfg.latent_dim)).astype(np.float32)
    _fps(spinning, latents, 1)  # warm-up: ORT plans its buffers on the first runs
    cases = (("1 frame a run", spinning, 1), ("4 frames a run", spinning, 4), ("8 frames a run", spinning, 8),
             ("1 frame a run, no spinning", sleeping, 1))
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, session, batch in cases:
            runs.setdefault(name, []).append(_fps(session, latents, batch))
    for name, fps in runs.items():
        print(f"{args.size} {name}: {', '.join(f'{x:.1f}' for x in fps)} frames/s; median {np.median(fps):.1f}")


if __name__ == "__main__":
    main()

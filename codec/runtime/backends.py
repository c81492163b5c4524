"""The runtimes a decoder can be built for, and the choice between them.

A built decoder is a callable: dequantized latents (n, latent_dim) float32 in, uint8 frames
(n, H, W, 3) out. ``onnx`` writes an ONNX graph of the weights (codec.runtime.onnx_graph) and
runs it with ONNX Runtime, which the base install carries; ``torch`` runs the training stack's
Decoder, where ``latentcast[train]`` is installed, and ``torch-bf16`` runs it in bfloat16,
which CPUs with AMX or AVX512-BF16 units (and recent GPUs) run several times faster, a little
off fp32's pixels. All start from the same float32 weights.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from typing import Protocol

import numpy as np

from ..format.decoder_state import State
from ..format.errors import ModelError, UsageError
from ..nn.config import CodecConfig

RUNTIMES = ("auto", "onnx", "torch", "torch-bf16")
DEFAULT_RUNTIME = "auto"
# The most PSNR a reduced-precision path may lose, as the trainer measured it on the model's
# own frames (CodecConfig.trained["bf16_loss_db"]), for auto to take it.
AUTO_MAX_LOSS_DB = 0.01
# From this many pixels a frame, torch in bf16 outruns ONNX Runtime in fp32: they were equal at
# 640x360, and bf16 1.3x faster at 960x540 (benchmarks/decode_speed.py). Below it bf16 would
# lose PSNR for nothing.
BF16_MIN_PIXELS = 960 * 540


class FrameDecoder(Protocol):
    cfg: CodecConfig
    runtime: str

    def __call__(self, latents: np.ndarray) -> np.ndarray: ...


def installed(runtime: str) -> bool:
    module = {"onnx": "onnxruntime", "torch": "torch", "torch-bf16": "torch"}[runtime]
    return importlib.util.find_spec(module) is not None


def bf16_native() -> bool:
    """Whether this machine's CPU runs bf16 convolutions in hardware (AMX or AVX512-BF16), by
    oneDNN's own check; imports torch. Elsewhere bf16 is emulated and slower than fp32."""
    import torch

    try:  # a private op, so its absence means no
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_within_bound(cfg: CodecConfig | None) -> bool:
    """Whether the trainer measured this model's bf16 decode within AUTO_MAX_LOSS_DB of fp32.
    Models trained before it measured say nothing, and stay fp32."""
    trained = getattr(cfg, "trained", None)
    loss = trained.get("bf16_loss_db") if isinstance(trained, dict) else None
    return isinstance(loss, (int, float)) and not isinstance(loss, bool) and loss <= AUTO_MAX_LOSS_DB


def resolve_runtime(runtime: str = DEFAULT_RUNTIME, cfg: CodecConfig | None = None) -> str:
    """The runtime to build with. ``auto`` is the fastest installed path that loses at most
    AUTO_MAX_LOSS_DB: torch in bf16 for a frame of at least BF16_MIN_PIXELS where the CPU has bf16
    units and the model's measured bf16 loss (``cfg``) is within that bound; otherwise ONNX
    Runtime, which decodes every tested size in fp32 as fast as torch or faster
    (benchmarks/decode_speed.py) and is in every install; torch where ONNX Runtime is missing.
    UsageError for one not installed."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "auto":
        # Checked cheapest first: bf16_native imports torch, which only a qualifying model pays.
        fast = (cfg is not None and cfg.width * cfg.height >= BF16_MIN_PIXELS and bf16_within_bound(cfg)
                and installed("torch") and bf16_native())
        runtime = "torch-bf16" if fast else "onnx" if installed("onnx") else "torch"
    if not installed(runtime):
        what = "pip install onnxruntime" if runtime == "onnx" else "pip install 'latentcast[train]'"
        raise UsageError(f"the {runtime} runtime is not installed: {what}")
    return runtime


def warm_up(runtime: str = DEFAULT_RUNTIME) -> None:
    """Start importing the runtime's modules on a thread, so the import overlaps the catalog call
    and the downloads before the first frame instead of delaying it (the graph is written without
    the onnx package, whose import alone took longer than the rest of a first view). Unknown or
    missing runtimes are left for build_decoder to report."""
    try:
        runtime = resolve_runtime(runtime)
    except UsageError:
        return
    modules = ("onnxruntime",) if runtime == "onnx" else ("torch",)
    threading.Thread(target=lambda: [importlib.import_module(m) for m in modules], name="latentcast-warm-up",
                     daemon=True).start()


def decode_threads() -> int:
    """Compute threads for one decoder pass: every core (LATENTCAST_DECODE_THREADS overrides)."""
    try:
        return max(1, int(os.environ.get("LATENTCAST_DECODE_THREADS", "") or (os.cpu_count() or 1)))
    except ValueError:
        raise UsageError("LATENTCAST_DECODE_THREADS must be a whole number") from None


def session_options():
    """ONNX Runtime options for a decoder session: every graph fusion, decode_threads() threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = decode_threads()
    options.log_severity_level = 3  # its warnings are about its own fusions, not the viewer's input
    return options


class OnnxDecoder:
    """The decoder as an ONNX Runtime session on the CPU (ORT_ENABLE_ALL: its conv and
    layout fusions), one frame per run as the torch path does."""

    runtime = "onnx"

    def __init__(self, cfg: CodecConfig, state: State, what: str = "decoder"):
        import onnxruntime as ort

        from .onnx_graph import decoder_graph

        self.cfg = cfg
        graph = decoder_graph(cfg, state)
        try:
            self._session = ort.InferenceSession(graph, session_options(),
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types, all of which mean "cannot build"
            raise ModelError(f"{what}: ONNX Runtime could not build the decoder ({str(e)[:200]})") from None

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(latents, dtype=np.float32)
        return np.concatenate([self._session.run(None, {"latents": z[i : i + 1]})[0] for i in range(len(z))]) \
            if len(z) else np.zeros((0, self.cfg.height, self.cfg.width, 3), np.uint8)


def build_decoder(state: State, cfg: CodecConfig, runtime: str = DEFAULT_RUNTIME, what: str = "decoder"
                  ) -> FrameDecoder:
    """A decoder for ``runtime`` from an int8 state already checked against its sha256."""
    runtime = resolve_runtime(runtime, cfg)
    if runtime == "onnx":
        return OnnxDecoder(cfg, state, what)
    from ..nn.decode import TorchDecoder  # torch: only the torch runtimes load it

    return TorchDecoder(cfg, state, what, bf16=runtime == "torch-bf16")

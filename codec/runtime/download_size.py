"""What a viewer downloads to build a movie's decoder, counted as `total` counts it.

Beside each file (a base, or a scene's part, zstd-coded as GetDecoder and HTTP send it) a viewer
needs what describes it: gRPC sends the file's config JSON with it, and a browser fetches a
base's weightless ONNX graph instead, zstd-coded. The two differ in size, and `total` counts the
larger, so no viewer receives more than a reported rate says. torch-free: the store counts this at ingest.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..format.compress import compressor
from ..format.decoder_file import compress_decoder
from ..format.decoder_state import part_base
from ..nn.config import DECODER, load_config, read_model_file
from ..nn.part_index import part_config, part_shas, read_part
from .onnx_graph import browser_graph


def coded_graph(config_json: str, decoder: bytes, sha256: str) -> tuple[bytes, int]:
    """A base's browser graph (onnx_graph.browser_graph) as GET .../graph.onnx sends it, zstd
    (a quarter of its size: its names and external-data entries repeat), and its size decoded."""
    graph = browser_graph(config_json, decoder, sha256)
    return compressor().compress(graph), len(graph)


def description_bytes(config_json: str, decoder: bytes, sha256: str) -> int:
    """Bytes a viewer receives beside the file ``decoder`` (safetensors) to build it: its config
    (gRPC) or, for a base, its ONNX graph (the browser), whichever is more."""
    sent = len(config_json.encode())
    return sent if part_base(decoder) else max(sent, len(coded_graph(config_json, decoder, sha256)[0]))


def model_download_bytes(model_dir: str | os.PathLike, parts: tuple[tuple[int, str], ...]) -> int:
    """Every decoder byte a viewer of a movie with header ``parts`` downloads from this model:
    the base and each part its scenes name, as sent, each with its description."""
    cfg = load_config(model_dir)
    base = read_model_file(Path(model_dir) / DECODER)
    total = len(compress_decoder(base)) + description_bytes(cfg.viewer_json(), base, cfg.decoder_sha256)
    for sha in part_shas(parts, cfg.decoder_sha256):
        part = read_part(model_dir, sha)
        total += len(compress_decoder(part)) + description_bytes(part_config(cfg.decoder_sha256), part, sha)
    return total

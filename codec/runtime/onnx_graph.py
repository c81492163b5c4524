"""The decoder as an ONNX graph, built from its config and weights: no torch, no exporter, and
not the ``onnx`` package either (codec.runtime.onnx_proto writes the bytes; importing onnx would
cost a viewer over a second before its first frame). The CLI viewer downloads the safetensors decoder every runtime
uses, checks its sha256, and builds this graph from it. A browser cannot run Python, so the server
sends it the graph with no weights in it (``external``): every initializer that comes from the
decoder file points into that file's bytes (ONNX external data, location ``decoder.safetensors``),
and the page fills them with the same download the CLI verifies, a scene's part applied in place.

The graph is the torch Decoder op for op (codec.nn.model), plus the player's conversion to
pixels, so its output is what ``codec.nn.tensors.to_uint8`` gives::

    latents (N, D) float32
      Reshape (N, C, gh, gw) -> Conv 3x3 -> Gelu                          stem
      [Conv 3x3 -> DepthToSpace(s, CRD) -> Gelu] per stage                 (CRD is PixelShuffle's order)
      Conv 3x3, x255 and +0.5 folded in -> Clip [0, 255] -> Round -> Cast uint8     head, in pixel levels
      [DepthToSpace(s, CRD)] -> Slice to the frame -> Transpose NHWC       on bytes, not floats
    frames (N, H, W, 3) uint8

With ``external``, each conv weight is its int8 codes and per-channel scales through a
DequantizeLinear (codes x scale: the float32 multiply decoder_state does), float16 biases are
Cast to float32, and the head's x 255 and + 0.5 are Mul and Add nodes: the same float32
operations, in the same order, as the folding numpy does for the plain graph. ONNX's Round,
like torch's, rounds halves to even, so only float summation order can move a pixel, by one
level at most where a value sits on a rounding boundary.
"""

from __future__ import annotations

import numpy as np

from ..format.decoder_file import TensorSpan, tensor_layout
from ..format.decoder_state import QSCALE, State, dequantize_state, load_state_verified, part_base
from ..format.errors import ModelError
from ..nn.config import CodecConfig
from . import onnx_proto as pb

# Gelu entered the standard ops at opset 20; ONNX Runtime runs it as one fused kernel.
OPSET = 20
INPUT, OUTPUT = "latents", "frames"
EXTERNAL_FILE = "decoder.safetensors"  # the name an external graph gives the decoder file it reads
_ONNX_TYPES = {"I8": pb.INT8, "F16": pb.FLOAT16, "F32": pb.FLOAT}
# ONNX Runtime reads IR versions up to its own; pin one every release of the last two years does.
IR_VERSION = 9


def conv_names(cfg: CodecConfig) -> list[str]:
    """The state-dict prefixes of the decoder's convs, in order (as codec.nn.model names them)."""
    head = {"shuffle": ["head.0"], "dwshuffle": ["head.0", "head.1"]}.get(cfg.head, ["head"])
    return ["stem", *(f"stages.{i}.0" for i in range(len(cfg.decoder_channels))), *head]


def _expected_shapes(cfg: CodecConfig) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    names = conv_names(cfg)
    outs = [cfg.stem_channels] + [c * s * s for s, c in zip(cfg.strides, cfg.decoder_channels)]
    last = cfg.decoder_channels[-1] if cfg.decoder_channels else cfg.stem_channels
    if cfg.head == "dwshuffle":
        outs.append(last)
    outs.append(3 * cfg.strides[-1] ** 2 if cfg.shuffles else 3)
    ins = [cfg.latent_channels, cfg.stem_channels, *cfg.decoder_channels]
    if cfg.head == "dwshuffle":
        ins.append(last)
    kernels = _kernels(cfg)
    for name, c_in, c_out in zip(names, ins, outs):
        k, groups = kernels[name]
        shapes[f"{name}.weight"] = (c_out, c_in // groups, k, k)
        shapes[f"{name}.bias"] = (c_out,)
    return shapes


def _kernels(cfg: CodecConfig) -> dict[str, tuple[int, int]]:
    """Each conv's (kernel size, groups): 3x3 and dense, but for the depthwise-separable head."""
    out = {name: (3, 1) for name in conv_names(cfg)}
    if cfg.head == "dwshuffle":
        last = cfg.decoder_channels[-1] if cfg.decoder_channels else cfg.stem_channels
        out["head.0"], out["head.1"] = (3, last), (1, 1)
    return out


def decoder_graph(cfg: CodecConfig, state: State, external: dict[str, TensorSpan] | None = None) -> bytes:
    """An ONNX model, serialized, that decodes latents (N, latent_dim) float32 to frames (N, H, W, 3) uint8,
    from a decoder's state as the file holds it (int8 codes and scales, or float weights).
    With ``external`` (the file's ``tensor_layout``), the graph holds no weight: each points into
    the decoder file's bytes, which the runtime is given as ``EXTERNAL_FILE``, so the graph is a
    few kilobytes and the weights travel once, coded, as the download every viewer verifies.
    ModelError when the weights do not fit the config."""
    weights = dequantize_state(state)
    expected = _expected_shapes(cfg)
    if set(weights) != set(expected) or any(tuple(weights[k].shape) != s for k, s in expected.items()):
        raise ModelError("decoder: weights do not fit the architecture in config.json")
    nodes: list[bytes] = []
    inits: list[bytes] = []

    def const(name: str, value) -> str:
        inits.append(pb.tensor(name, np.asarray(value)))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(pb.node(op, inputs, [out], name=out, **attrs))
        return out

    def from_file(name: str) -> str:
        """The file's tensor ``name`` as float32 (or int8 codes) in the graph, read from the file."""
        span = external[name]
        if span.dtype not in _ONNX_TYPES or tuple(span.shape) != tuple(state[name].shape):
            raise ModelError(f"decoder: {name[:60]} is {span.dtype} {span.shape}, not a tensor the graph can read")
        tensor_name = f"file:{name}"
        inits.append(pb.external_tensor(tensor_name, _ONNX_TYPES[span.dtype], span.shape, EXTERNAL_FILE,
                                        span.offset, span.length))
        if span.dtype in ("I8", "F32"):
            return tensor_name
        return node("Cast", [tensor_name], f"{name}.float", to=pb.FLOAT)

    def scaled(x: str, gain: np.float32, add: np.float32 = np.float32(0)) -> str:
        if add:
            x = node("Add", [x, const(f"{x}.add", add)], f"{x}.plus")
        return node("Mul", [x, const(f"{x}.gain", gain)], f"{x}.times") if gain != 1 else x

    def conv(prefix: str, x: str, levels: bool = False) -> str:
        # The head's output in pixel levels: the x 255 and the + 0.5 folded into its weights.
        gain, add = np.float32(255 if levels else 1), np.float32(0.5 if levels else 0)
        w, b = f"{prefix}.weight", f"{prefix}.bias"
        if external is not None:
            bias = scaled(from_file(b), gain, add)
            if w + QSCALE in state:
                weight = node("DequantizeLinear", [from_file(w), scaled(from_file(w + QSCALE), gain)], w, axis=0)
            else:
                weight = scaled(from_file(w), gain)
        else:
            bias = const(b, ((weights[b] + add) * gain).astype(np.float32))
            weight = const(w, (weights[w] * gain).astype(np.float32))
        k, groups = kernels[prefix]
        return node("Conv", [x, weight, bias], f"{prefix}.out", kernel_shape=[k, k], pads=[k // 2] * 4, group=groups)

    kernels = _kernels(cfg)
    gh, gw = cfg.grid
    x = node("Reshape", [INPUT, const("grid_shape", np.array([-1, cfg.latent_channels, gh, gw], np.int64))], "grid")
    names = conv_names(cfg)
    x = node("Gelu", [conv(names[0], x)], "stem.gelu")
    for i, (s, name) in enumerate(zip(cfg.strides, names[1 : 1 + len(cfg.decoder_channels)])):
        x = node("Gelu", [node("DepthToSpace", [conv(name, x)], f"stage{i}.shuffle", blocksize=s, mode="CRD")],
                 f"stage{i}.gelu")
    for name in names[1 + len(cfg.decoder_channels) : -1]:  # the depthwise half of a separable head
        x = conv(name, x)
    x = conv(names[-1], x, levels=True)
    x = node("Clip", [x, const("zero", np.array(0.0, np.float32)), const("top", np.array(255.0, np.float32))],
             "clipped")
    x = node("Cast", [node("Round", [x], "rounded")], "pixels", to=pb.UINT8)
    # Pixels are rounded before they are rearranged, so the rearranging moves a byte per value, not four.
    if cfg.shuffles:
        x = node("DepthToSpace", [x], "canvas", blocksize=cfg.strides[-1], mode="CRD")
    ch, cw = cfg.canvas
    top, left = (ch - cfg.height) // 2, (cw - cfg.width) // 2
    x = node("Slice", [x, const("crop_start", np.array([top, left], np.int64)),
                       const("crop_end", np.array([top + cfg.height, left + cfg.width], np.int64)),
                       const("crop_axes", np.array([2, 3], np.int64))], "frame")
    node("Transpose", [x], OUTPUT, perm=[0, 2, 3, 1])
    return pb.model(nodes, "latentcast-decoder", [pb.value_info(INPUT, pb.FLOAT, ["n", cfg.latent_dim])],
                    [pb.value_info(OUTPUT, pb.UINT8, ["n", cfg.height, cfg.width, 3])], inits,
                    opset=OPSET, ir_version=IR_VERSION, producer="latentcast")


def browser_graph(config_json: str, decoder: bytes, sha256: str) -> bytes:
    """The weightless graph a browser fetches for a base decoder (GET .../graph.onnx): its
    initializers point into ``decoder``, the safetensors file, checked against ``sha256`` before
    anything is built from it. ModelError when it is not a base or does not fit the config."""
    if part_base(decoder):
        raise ModelError("that is a scene part: its base's graph reads it")
    state = load_state_verified(decoder, sha256, "decoder")
    try:
        cfg = CodecConfig.from_json(config_json)
    except (ValueError, TypeError) as e:
        raise ModelError(f"decoder config is malformed ({e})") from None
    return decoder_graph(cfg, state, external=tensor_layout(decoder))

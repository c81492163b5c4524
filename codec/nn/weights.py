"""Model directories: config.json + encoder/decoder weights as safetensors, each with a sha256.

Weights are only ever read with safetensors (never unpickled) and only after their sha256
matches the one recorded in ``config.json``::

    MODEL_DIR/
      config.json            CodecConfig, including encoder_sha256 and decoder_sha256
      encoder.safetensors    fp32, stays with the company
      decoder.safetensors    int8 codes of 2-8 bits with per-channel scales, the file clients
                             download (entropy-coded on the wire)
      train_log.jsonl
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from ..format.atomic import write_bytes_atomic, write_text_atomic
from ..format.decoder_file import sha256_bytes
from ..format.decoder_state import QSCALE, State, dequantize_state, load_state_verified
from ..format.errors import ModelError
from .config import CONFIG, DECODER, ENCODER, CodecConfig, load_config, read_model_file
from .model import Autoencoder, Decoder, Encoder, build_model
from .weight_codes import quantize_weight


def state_to_bytes(module: torch.nn.Module, dtype: torch.dtype | None = None) -> bytes:
    """safetensors bytes of a module's weights, optionally cast."""
    state = {k: (v.detach().to("cpu", dtype) if dtype else v.detach().cpu()).contiguous()
             for k, v in module.state_dict().items()}
    return st_save(state)


def int8_state_bytes(module: torch.nn.Module, bits: float | dict[str, float] = 8) -> bytes:
    """safetensors bytes with every conv weight as int8 codes of ``bits`` bits (one width, or a
    width per weight name) plus a float32 scale per output channel (symmetric, max-abs); biases
    stay fp16. The codes are small, zero-centred integers, which the download codes in about as many
    bits as their entropy (decoder_file.compress_decoder)."""
    state: dict[str, torch.Tensor] = {}
    for k, v in module.state_dict().items():
        v = v.detach().cpu().float()
        if v.ndim >= 2:
            codes, scale = quantize_weight(v, bits[k] if isinstance(bits, dict) else bits)
            state[k] = codes.contiguous()
            state[k + QSCALE] = scale.contiguous()
        else:
            state[k] = v.half().contiguous()
    return st_save(state)


def shipped_widths(decoder: Decoder) -> dict[str, float]:
    """The code width of each decoder weight in the file clients download, from its config."""
    return {k: decoder.cfg.weight_width(k) for k, v in decoder.state_dict().items() if v.ndim >= 2}


def load_state_into(module: torch.nn.Module, state: State, what: str) -> None:
    """Load an int8 or float state (numpy, codec.format.decoder_state) into ``module``."""
    weights = dequantize_state(state)
    own = module.state_dict()
    if set(weights) != set(own) or any(tuple(weights[k].shape) != tuple(own[k].shape) for k in own):
        raise ModelError(f"{what}: weights do not fit the architecture in config.json")
    module.load_state_dict({k: torch.from_numpy(v).to(own[k].dtype) for k, v in weights.items()})


def save_model(model: Autoencoder, model_dir: str | os.PathLike, extra: dict | None = None) -> CodecConfig:
    """Write both weight files and config.json (last, so a config always names files that exist)."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    enc = state_to_bytes(model.encoder)
    dec = int8_state_bytes(model.decoder, shipped_widths(model.decoder))
    write_bytes_atomic(d / ENCODER, enc)
    write_bytes_atomic(d / DECODER, dec)
    cfg = model.cfg
    cfg.encoder_sha256 = sha256_bytes(enc)
    cfg.decoder_sha256 = sha256_bytes(dec)
    cfg.decoder_dtype = "int8"
    if extra:
        cfg.trained = {**cfg.trained, **extra}
    write_text_atomic(d / CONFIG, cfg.to_json() + "\n")
    return cfg


def _load_into(module: torch.nn.Module, data: bytes, sha256: str, what: str) -> torch.nn.Module:
    load_state_into(module, load_state_verified(data, sha256, what), what)
    return module.eval()


def decoder_from_state(state: State, cfg: CodecConfig, what: str = DECODER) -> Decoder:
    """A float32, channels-last decoder from an int8 state already checked (a base with a scene's
    part applied: codec.format.decoder_state). load_decoder_bytes builds through here too."""
    decoder = Decoder(cfg)
    load_state_into(decoder, state, what)
    return decoder.eval().to(memory_format=torch.channels_last)


def load_decoder_bytes(data: bytes, cfg: CodecConfig, what: str = DECODER) -> Decoder:
    """A float32 decoder from verified safetensors bytes (what the client downloads), ready to run.

    Its weights are channels-last: oneDNN then keeps every activation channels-last too, which
    spares a layout conversion around each conv and PixelShuffle and about doubles CPU decode
    speed. Every decode path loads through here, so all of them compute the same bytes.
    """
    return decoder_from_state(load_state_verified(data, cfg.decoder_sha256, what), cfg, what)


def load_decoder(model_dir: str | os.PathLike) -> Decoder:
    d = Path(model_dir)
    return load_decoder_bytes(read_model_file(d / DECODER), load_config(d), str(d / DECODER))


def load_encoder(model_dir: str | os.PathLike) -> Encoder:
    d = Path(model_dir)
    cfg = load_config(d)
    return _load_into(Encoder(cfg), read_model_file(d / ENCODER), cfg.encoder_sha256, str(d / ENCODER))


def load_model(model_dir: str | os.PathLike) -> Autoencoder:
    """Both halves, each checked against its sha256, reading config.json once."""
    d = Path(model_dir)
    cfg = load_config(d)
    model = build_model(cfg)
    _load_into(model.encoder, read_model_file(d / ENCODER), cfg.encoder_sha256, str(d / ENCODER))
    _load_into(model.decoder, read_model_file(d / DECODER), cfg.decoder_sha256, str(d / DECODER))
    return model.eval()

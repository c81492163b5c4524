"""Checkpoints: weights, Adam's moments, the QAT weight average and the run's progress, as
safetensors plus a JSON state written last (its presence marks a complete checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save
from torch.optim.swa_utils import AveragedModel

from ..format.atomic import write_bytes_atomic, write_text_atomic
from ..format.errors import ModelError
from ..nn.model import Autoencoder

CHECKPOINT_DIR = "checkpoint"


def save_checkpoint(model_dir: Path, model: Autoencoder, opt: torch.optim.Optimizer, state: dict,
                    average: AveragedModel | None = None) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if average is not None:
        tensors.update({f"average.{k}": v.detach().cpu().contiguous() for k, v in average.state_dict().items()})
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        for k, v in opt.state.get(p, {}).items():
            tensors[f"opt.{i}.{k}"] = v.detach().cpu().reshape(v.shape).contiguous()
    ck = model_dir / CHECKPOINT_DIR
    ck.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(ck / "state.safetensors", st_save(tensors))
    write_text_atomic(ck / "state.json", json.dumps(state))  # written last: it marks a complete checkpoint


def load_checkpoint(model_dir: Path, model: Autoencoder, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Load weights and moments from the checkpoint; returns its state and the QAT phase's weight
    average (state-dict tensors, empty when the run had not reached that phase)."""
    ck = model_dir / CHECKPOINT_DIR
    try:
        state = json.loads((ck / "state.json").read_text())
        tensors = st_load_file(str(ck / "state.safetensors"))
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: nothing to resume (no checkpoint)") from None
    except Exception as e:
        raise ModelError(f"{ck}: unreadable checkpoint ({e})") from None
    try:
        model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError:
        raise ModelError(f"{ck}: checkpoint does not match this architecture") from None
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            p = params[int(i)]
            # Moments take their parameter's memory layout (channels-last), as the fused step expects.
            opt.state[p][name] = torch.empty_like(p).copy_(v) if v.shape == p.shape else v
    return state, {k.removeprefix("average."): v for k, v in tensors.items() if k.startswith("average.")}

"""torchrun + DDP with 2 gloo processes on the CPU reaches single-process quality."""

import os
import socket
import subprocess
import sys

from safetensors.torch import load_file as st_load_file

from latentcast.codec.nn.config import load_config
from latentcast.codec.train.loop import train
from latentcast.codec.train.options import TrainOptions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_single_process(clip, tmp_path):
    # The weight rate term prices its gradient with the ranks' mean MSE, an all-reduce of its own.
    common = ["--epochs", "20", "--batch-size", "4", "--latent-dim", "64", "--lr", "3e-3", "--weight-rate-slope", "2",
              "-q"]
    single = train(str(clip), tmp_path / "single", TrainOptions(minutes=None, epochs=20, batch_size=4,
                                                                latent_dim=64, lr=3e-3, weight_rate_slope=2,
                                                                progress=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1",
           "-m", "latentcast", "train", str(clip), "-o", str(tmp_path / "ddp"), "--device", "cpu", *common]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ddp = load_config(tmp_path / "ddp").trained
    assert ddp["steps"] == single["steps"]  # the global batch is split across ranks
    assert ddp["psnr_float"] > single["psnr_float"] - 1.0, (ddp["psnr_float"], single["psnr_float"])
    # rank 0 alone logged: one final record
    log = (tmp_path / "ddp" / "train_log.jsonl").read_text()
    assert log.count('"final"') == 1
    # DDP hands the frozen encoder gradients in the QAT phase; they are dropped, so Adam stepped
    # the encoder only before the phase and the decoder on every step (moments are numbered in
    # model.parameters() order: the encoder's first, the decoder's last).
    moments = st_load_file(str(tmp_path / "ddp" / "checkpoint" / "state.safetensors"))
    steps = sorted((int(k.split(".")[1]), v.item()) for k, v in moments.items() if k.endswith(".step"))
    assert ddp["averaged_steps"] > 0
    assert steps[0][1] == ddp["steps"] - ddp["averaged_steps"]
    assert steps[-1][1] == ddp["steps"]


def test_torchrun_ranks_share_the_scene_parts(parted_model, two_scene_clip, tmp_path):
    import json
    import shutil

    from latentcast.codec.nn.part_index import load_part_index

    model = tmp_path / "m"
    shutil.copytree(parted_model, model, ignore=shutil.ignore_patterns("parts", "parts.json"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1", "-m", "latentcast", "parts",
           str(two_scene_clip), "--model", str(model), "--seconds-per-second", "0.5", "--sensitivity", "4",
           "--rd-slope", "0", "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    index = load_part_index(model, load_config(model).decoder_sha256)
    assert [(p.start, p.end) for p in index.parts] == [(0, 24), (24, 48)]
    ranks = [json.loads((model / "parts" / "done" / f"{p.start}.json").read_text())["rank"] for p in index.parts]
    assert ranks == [0, 1]  # each rank fit every second scene

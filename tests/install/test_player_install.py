"""The base install is the player: the wheel, installed without extras in a fresh venv, lists and
plays a served movie with ONNX Runtime, has no torch, and says what to install for the rest.

A wheel catches what an editable install hides: a subpackage or data file left out of it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentcast.codec import video
from latentcast.server.app import ServerOptions, run_server

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture(scope="module")
def player_venv(tmp_path_factory) -> Path:
    """A venv holding the latentcast wheel and its base dependencies only."""
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves build/ in the tree it builds, and a stale build/lib
    # would put modules deleted since into the wheel.
    source = shutil.copytree(ROOT, work / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
        "latentcast-demo"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist",
                  source])
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (work / "dist").glob("latentcast-*.whl")
    venv = work / "venv"
    assert _run([sys.executable, "-m", "venv", venv]).returncode == 0
    installed = _run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel])
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv


def test_the_player_install_plays_a_served_movie_without_torch(player_venv, store_with_movie, offline_frames,
                                                               tmp_path):
    bin_ = player_venv / "bin"
    no_torch = _run([bin_ / "python", "-c", "import torch"])
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    web = _run([bin_ / "python", "-c", "from latentcast.server.http_gateway import _web_files; print(*_web_files())"],
               cwd=tmp_path)  # not the checkout, whose latentcast/ folder would shadow the installed package
    assert {"watch.html", "player.js", "vendor/ort-wasm-simd-threaded.wasm"} <= set(web.stdout.split()), web.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LATENTCAST_TOKEN")}
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=["tok"])) as server:
        listed = _run([bin_ / "latentcast", "list", "--server", server.address, "--token", "tok"], env=env,
                      cwd=tmp_path)
        assert listed.returncode == 0 and "Shapes" in listed.stdout, listed.stderr
        out = tmp_path / "played.mkv"
        played = _run([bin_ / "latentcast", "play", rec.id, "--server", server.address, "--token", "tok",
                       "-o", out, "--cache-dir", tmp_path / "cache", "-q"], env=env, cwd=tmp_path)
        assert played.returncode == 0, played.stderr
    assert "(onnx)" in played.stderr  # the summary names the runtime that decoded
    frames = np.stack(list(video.read_frames(out)))
    # The same ONNX graph as this process's offline decode; a level apart at most if the two
    # installs resolved different ONNX Runtime releases.
    assert frames.shape == offline_frames.shape
    assert np.abs(frames.astype(int) - offline_frames.astype(int)).max() <= 1


def test_the_wheel_holds_every_package_of_the_source(player_venv):
    import zipfile

    # The source folders map under latentcast (pyproject's package-dir): codec/ is latentcast/codec.
    roots = {"latentcast": "latentcast", "codec": "latentcast/codec", "server": "latentcast/server",
             "client": "latentcast/client", "proto": "latentcast/proto"}
    source = {roots[top] + str(init.parent)[len(str(ROOT / top)):]
              for top in roots for init in (ROOT / top).rglob("__init__.py")}
    (wheel,) = (player_venv.parent / "dist").glob("latentcast-*.whl")
    inside = {name.rsplit("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist() if name.endswith("/__init__.py")}
    assert source <= inside, f"left out of the wheel: {sorted(source - inside)}"
    # The latent tools, once left out, load in the player install (no torch).
    tools = _run([player_venv / "bin" / "python", "-c", "import latentcast.codec.explore.similar, "
                  "latentcast.codec.explore.inspect, latentcast.codec.explore.thumbnails"], cwd=player_venv.parent)
    assert tools.returncode == 0, tools.stderr[-2000:]


@pytest.mark.parametrize("command", ["train", "encode", "ingest", "bench", "parts", "demo"])
def test_company_commands_say_what_to_install(player_venv, command, tmp_path):
    result = _run([player_venv / "bin" / "latentcast", command, "x"], cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "pip install 'latentcast[train]'" in lines[0]

"""Fuzz targets: each takes untrusted bytes and may raise only the project's own errors.

Driven by atheris in fuzz.py (coverage-guided, for the long runs) and by Hypothesis in
test_targets.py (a few hundred inputs each, in every test run).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from fractions import Fraction

import numpy as np

from latentcast.codec import video
from latentcast.codec.format.chunks import encode_chunk
from latentcast.codec.format.container import Container, MovieHeader, write_container
from latentcast.codec.format.decoder_file import sha256_bytes
from latentcast.codec.format.errors import LatentcastError
from latentcast.codec.format.quantizer import Quantizer
from latentcast.codec.nn.config import CodecConfig
from latentcast.codec.nn.weights import load_decoder_bytes

SCRATCH = tempfile.mkdtemp(prefix="latentcast-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def _valid_container() -> bytes:
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(10, 8)).astype(np.float32)
    quant = Quantizer.fit(lat, 6)
    q = quant.quantize(lat)
    header = MovieHeader(16, 16, Fraction(10), 10, 8, 6, 4, "ab" * 32, quant.lo, quant.hi)
    path = os.path.join(SCRATCH, "seed.lcv")
    write_container(path, header, [(s, len(q[s : s + 4]), encode_chunk(q[s : s + 4], 6)) for s in range(0, 10, 4)])
    with open(path, "rb") as f:
        return f.read()


SEED = _valid_container()


def _write(data: bytes, name: str) -> str:
    path = os.path.join(SCRATCH, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _read_container(data: bytes) -> None:
    try:
        with Container(_write(data, "in.lcv")) as c:
            for i in range(len(c.chunks)):
                c.read_chunk(i)
    except LatentcastError:
        pass


def target_container(data: bytes) -> None:
    _read_container(data)


def target_header(data: bytes) -> None:
    _read_container(data + SEED[len(data):])


def target_y4m(data: bytes) -> None:
    path = _write(b"YUV4MPEG2 " + data, "in.y4m")
    try:
        video.probe(path)
        for _ in video.read_frames(path, max_frames=4):
            pass
    except LatentcastError:
        pass


_CFG = CodecConfig.plan(16, 16, 16)


def target_safetensors(data: bytes) -> None:
    cfg = CodecConfig(**{**_CFG.__dict__, "decoder_sha256": sha256_bytes(data)})
    try:
        load_decoder_bytes(data, cfg)
    except LatentcastError:
        pass


TARGETS = {"container": target_container, "header": target_header, "y4m": target_y4m,
           "safetensors": target_safetensors}


SEEDS = {"container": SEED, "header": SEED[:200], "y4m": b"W4 H4 F10:1 C444\nFRAME\n" + bytes(48),
         "safetensors": b'\x0e\x00\x00\x00\x00\x00\x00\x00{"a":"b"}     '}

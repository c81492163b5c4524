"""Coverage-guided fuzzing of the parsers that read untrusted bytes (atheris / libFuzzer).

    python tests/fuzz/fuzz.py container   -runs=100000    # .lcv files, whole
    python tests/fuzz/fuzz.py header      -runs=100000    # a valid .lcv with its header bytes replaced
    python tests/fuzz/fuzz.py y4m         -runs=100000    # YUV4MPEG2 input through PyAV
    python tests/fuzz/fuzz.py safetensors -runs=100000    # decoder files as a client receives them
    python tests/fuzz/fuzz.py movie       -runs=100000    # GetMovie answers, through the client's handlers
    python tests/fuzz/fuzz.py latent_chunk -runs=100000   # streamed chunks of a movie
    python tests/fuzz/fuzz.py decoder_chunk -runs=100000  # a decoder download's chunk

Only the project's own error types may escape; anything else is a crash that libFuzzer reports
(with the input saved as crash-*). Needs atheris: pip install atheris.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Heavy third-party modules first, uninstrumented: coverage feedback is wanted on our code only.
import av  # noqa: E402,F401
import numpy  # noqa: E402,F401
import safetensors.torch  # noqa: E402,F401
import torch  # noqa: E402,F401
import zstandard  # noqa: E402,F401

with atheris.instrument_imports(include=["latentcast"]):
    import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        print(f"usage: fuzz.py {{{','.join(targets.TARGETS)}}} [libFuzzer flags, e.g. -runs=100000]", file=sys.stderr)
        sys.exit(2)
    name = sys.argv.pop(1)
    corpus = os.path.join(targets.SCRATCH, "corpus")
    os.makedirs(corpus, exist_ok=True)
    with open(os.path.join(corpus, "seed"), "wb") as f:
        f.write(targets.SEEDS[name])
    atheris.Setup(sys.argv + [corpus], targets.TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()

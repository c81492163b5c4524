"""Regenerate the gRPC Python code from proto/latentcast.proto.

    python proto/generate.py            # rewrite proto/latentcast_pb2*.py(i)
    python proto/generate.py --check    # exit 1 if the checked-in code is stale

The generated code is checked in so installing latentcast needs no protoc; grpcio-tools is
pinned in the `dev`/`test` extras together with protobuf so generation is reproducible.
The .proto is staged as latentcast/proto/latentcast.proto so the generated imports read
`from latentcast.proto import latentcast_pb2`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUTS = ("latentcast_pb2.py", "latentcast_pb2.pyi", "latentcast_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "latentcast" / "proto"
        staged.mkdir(parents=True)
        shutil.copy(HERE / "latentcast.proto", staged / "latentcast.proto")
        args = ["protoc", f"-I{tmp}", f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}",
                str(staged / "latentcast.proto")]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for name in OUTPUTS:
            shutil.copy(staged / name, out_dir / name)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = [n for n in OUTPUTS if (Path(tmp) / n).read_bytes() != (HERE / n).read_bytes()]
        if stale:
            print(f"stale generated code: {', '.join(stale)}; run python proto/generate.py", file=sys.stderr)
            return 1
        return 0
    generate(HERE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

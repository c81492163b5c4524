#!/usr/bin/env bash
# Refresh the browser player's vendored npm build outputs, and their record in VENDORED.json.
#   latentcast/web/vendor/refresh.sh [ORT_VERSION] [FZSTD_VERSION]
# Needs npm and the npm registry; installing or running latentcast never does.
set -euo pipefail
ORT=${1:-1.30.0}
FZSTD=${2:-0.1.1}
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "onnxruntime-web@$ORT" "fzstd@$FZSTD" >/dev/null
mkdir ort fz
tar xzf "onnxruntime-web-$ORT.tgz" -C ort
tar xzf "fzstd-$FZSTD.tgz" -C fz
# The WASM build alone (no WebGL/WebGPU backends): the page runs the CPU kernels, SIMD and threads.
cp ort/package/dist/ort.wasm.min.mjs ort/package/dist/ort-wasm-simd-threaded.mjs \
   ort/package/dist/ort-wasm-simd-threaded.wasm "$here/"
cp fz/package/esm/index.mjs "$here/fzstd.mjs"
cp fz/package/LICENSE "$here/LICENSE.fzstd"  # onnxruntime-web ships none; its package.json says MIT
cd "$here"
python3 - "$ORT" "$FZSTD" <<'PY'
import hashlib, json, sys
from pathlib import Path
ort, fzstd = sys.argv[1:3]
files = {"ort.wasm.min.mjs": ("onnxruntime-web", ort), "ort-wasm-simd-threaded.mjs": ("onnxruntime-web", ort),
         "ort-wasm-simd-threaded.wasm": ("onnxruntime-web", ort), "fzstd.mjs": ("fzstd", fzstd)}
licenses = {"onnxruntime-web": "MIT (Microsoft)", "fzstd": "MIT (Arjun Barrett)"}
record = {name: {"package": pkg, "version": ver, "license": licenses[pkg],
                 "sha256": hashlib.sha256(Path(name).read_bytes()).hexdigest(), "bytes": Path(name).stat().st_size}
          for name, (pkg, ver) in files.items()}
Path("VENDORED.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
PY
echo "vendored onnxruntime-web $ORT and fzstd $FZSTD into $here"

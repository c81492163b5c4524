"""What the browser's chunk check costs: XXH3-64 in JavaScript (latentcast/web/xxh3.js) beside the
page's own inflate of the same bytes (zstd.js), in headless Chromium, best of 20 each.

    python benchmarks/browser_checksum.py [--sizes 4096 65536]

The page's timer is coarse (0.1 ms without cross-origin isolation), so a figure of 0.0 means
under a tenth of a millisecond.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import Browser, chromium_binary  # noqa: E402
from latentcast.codec.format.compress import compressor  # noqa: E402
from latentcast.server.app import ServerOptions, run_server  # noqa: E402
from latentcast.server.store import Store  # noqa: E402

MEASURE = """Promise.all([import('/web/xxh3.js'), import('/web/zstd.js')]).then(([x, z]) => {
  const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const raw = bytes('%s'), coded = bytes('%s');
  const best = (fn) => { let b = Infinity; for (let r = 0; r < 20; r++) { const t = performance.now(); fn();
    b = Math.min(b, performance.now() - t); } return b; };
  return [best(() => x.xxh3(coded)), best(() => z.inflateExact(coded, raw.length, 'a chunk', Error))];
})"""


def main() -> None:
    import base64

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[4096, 65536], help="coded chunk sizes, bytes")
    args = p.parse_args()
    binary = chromium_binary()
    if binary is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    rng = np.random.default_rng(0)
    print("| coded chunk | xxh3 in JS | zstd inflate in JS |\n|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        with run_server(Store(Path(tmp) / "s", create=True), ServerOptions(http_listen="127.0.0.1:0")) as srv:
            browser = Browser(binary)
            try:
                browser.goto(f"{srv.http_url}/healthz")  # any page of the origin can import the modules
                browser.wait_for("document.readyState === 'complete'")
                for size in args.sizes:
                    # Symbols like a chunk's: small deltas, which zstd codes to about a third.
                    raw = rng.integers(0, 8, size * 3, np.uint8).tobytes()
                    coded = compressor().compress(raw)
                    b64 = [base64.b64encode(b).decode() for b in (raw, coded)]
                    hashed, inflated = browser.evaluate(MEASURE % tuple(b64))
                    print(f"| {len(coded):,} bytes | {hashed:.1f} ms | {inflated:.1f} ms |", flush=True)
            finally:
                browser.close()


if __name__ == "__main__":
    main()

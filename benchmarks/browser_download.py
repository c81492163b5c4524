"""What a browser viewer downloads for the decoder, and how long the page takes to its first frame.

    python benchmarks/browser_download.py MODEL_DIR [MODEL_DIR ...] [--video latentcast/samples/cockatoo-320x180.mp4]

For each trained model directory: the movie is ingested with it, `serve --http` runs on
loopback, and the /watch page opens in headless Chromium from an empty cache. It reports the
decoder bytes the page received (the download every viewer gets and the base's weightless
graph, zstd-coded: both counted in `total`), beside the form the browser was sent before: one ONNX graph holding
the int8 codes, scales and biases inline (built here from the same graph and file, so both come
from one run). Then the page's time from navigation to its first frame drawn, and the time its
JavaScript takes to inflate and verify the download (decoder.js: spans, zstd, SHA-256), best of 5.

A second table breaks the first frame down, in ms from navigation: the movie's description and
the decoder received (resource timing), ONNX Runtime's WASM received, the decoder's session
started and built (the player's performance marks), and the frame drawn; then the same session
built again once the runtime is up, which is what the first build spends beyond ONNX Runtime's
own start-up (compiling its WASM); last, the first frame of a second visit to the page in the
same browser, with ONNX Runtime's files in its cache.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import onnx
from onnx.external_data_helper import load_external_data_for_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import Browser, chromium_binary  # noqa: E402
from latentcast.codec.format.decoder_file import tensor_layout  # noqa: E402
from latentcast.codec.format.decoder_state import load_state_verified  # noqa: E402
from latentcast.codec.nn.config import DECODER, load_config  # noqa: E402
from latentcast.codec.runtime.download_size import coded_graph  # noqa: E402
from latentcast.codec.runtime.onnx_graph import EXTERNAL_FILE, decoder_graph  # noqa: E402
from latentcast.server.app import ServerOptions, run_server  # noqa: E402
from latentcast.server.store import Store  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "latentcast" / "samples" / "cockatoo-320x180.mp4"

PREPARE = """import('/web/decoder.js').then(async m => {
  const r = await fetch('/v1/decoders/%s', {headers: {}});
  const wire = new Uint8Array(await r.arrayBuffer()), size = Number(r.headers.get('X-Latentcast-Decoded-Bytes'));
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    m.verified(m.decoderFile(wire, size), '%s', 'decoder');
    best = Math.min(best, performance.now() - t0);
  }
  return best;
})"""


TIMELINE = """window.latentcast.ready.then(async p => {
  const end = (part) => Math.round(
    performance.getEntriesByType('resource').find(e => e.name.includes(part)).responseEnd);
  const mark = (name) => Math.round(performance.getEntriesByName(name)[0].startTime);
  const ort = await import('/web/vendor/ort.wasm.min.mjs');
  const graph = await p.graph(), weights = await p.file(p.movie.decoder_sha256);
  const t0 = performance.now();
  await ort.InferenceSession.create(graph, {executionProviders: ['wasm'], graphOptimizationLevel: 'all',
    externalData: [{path: 'decoder.safetensors', data: weights}]});
  return [end('/v1/movies/'), end('/v1/decoders/' + p.movie.decoder_sha256), end('simd-threaded.wasm'),
          mark('latentcast:session-start'), mark('latentcast:session-built'), Math.round(p.firstFrameMs),
          Math.round(performance.now() - t0)];
})"""


def inline_graph_bytes(model_dir: Path) -> tuple[int, int]:
    """(the weightless graph's bytes as sent, zstd-coded; the same graph with the file's tensors
    inline, as the browser was sent it before)."""
    data = (model_dir / DECODER).read_bytes()
    cfg = load_config(model_dir)
    graph = decoder_graph(cfg, load_state_verified(data, cfg.decoder_sha256, "decoder"), external=tensor_layout(data))
    weightless, graph = len(coded_graph(cfg.viewer_json(), data, cfg.decoder_sha256)[0]), onnx.load_model_from_string(graph)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / EXTERNAL_FILE).write_bytes(data)
        load_external_data_for_model(graph, tmp)
    return weightless, len(graph.SerializeToString())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--video", default=str(SAMPLE))
    args = p.parse_args()
    binary = chromium_binary()
    if binary is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    print("| model | decoder as sent | graph | browser receives | before: graph with the codes inline | "
          "before / now | navigation to first frame | inflate + verify in JS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    timelines = []
    for model in args.models:
        weightless, inline = inline_graph_bytes(model)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "s", create=True)
            rec = store.ingest(args.video, model, title=model.name, progress=False)
            with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
                browser = Browser(binary, timeout_s=300)
                try:
                    browser.goto(f"{srv.http_url}/watch/{rec.id}")
                    browser.wait_for("window.latentcast.ready.then(p => !!p)", timeout_s=300)
                    first = browser.evaluate("window.latentcast.ready.then(p => p.firstFrameMs)")
                    got = browser.evaluate("window.latentcast.ready.then(p => p.downloaded)")
                    sha = load_config(model).decoder_sha256
                    prepare = browser.evaluate(PREPARE % (sha, sha))
                    timeline = browser.evaluate(TIMELINE)
                    # A return visit: the same browser, ONNX Runtime's files (and V8's code for its
                    # WASM) in its cache; the decoder is fetched again (no-store behind the token).
                    browser.goto(f"{srv.http_url}/watch/{rec.id}")
                    browser.wait_for("window.latentcast.ready.then(p => !!p)", timeout_s=300)
                    again = browser.evaluate("window.latentcast.ready.then(p => p.firstFrameMs)")
                    timelines.append((model, timeline + [round(again)]))
                finally:
                    browser.close()
        received = got["decoder"] + got["graph"]
        print(f"| {model} | {got['decoder']:,} | {got['graph']:,} | {received:,} | {inline:,} | "
              f"{inline / received:.2f} | {first:.0f} ms | {prepare:.1f} ms |", flush=True)
        assert got["graph"] == weightless, "the page received another graph than the one built here"
        assert received <= rec.decoder_bytes + rec.part_bytes, "the page received more than `total` counts"
    print("\n| model | description | decoder | ONNX Runtime's WASM | session started | session built | "
          "first frame | the session built again, runtime up | first frame, return visit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model, t in timelines:
        print(f"| {model} | " + " | ".join(f"{v} ms" for v in t) + " |")


if __name__ == "__main__":
    main()

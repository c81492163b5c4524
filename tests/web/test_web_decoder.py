"""The browser's decoder download (latentcast/web/decoder.js) against the Python side, bit for
bit, in a real headless Chromium: SHA-256, the rANS coder, the download's spans, a scene's part
applied; then a movie of two scenes played in the page from the download every viewer gets."""

import base64
import hashlib
import json
import struct

import numpy as np
import pytest
import zstandard
from safetensors.numpy import load as st_load

from browser import Browser, canvas_pixels, chromium_binary
from latentcast.codec.format import rans
from latentcast.codec.format.compress import compressor, decompress_exact
from latentcast.codec.format.container import Container
from latentcast.codec.format.decoder_file import compress_decoder, tensor_layout
from latentcast.codec.format.decoder_state import apply_part, load_state_verified
from latentcast.codec.nn.config import DECODER, load_config
from latentcast.codec.nn.part_index import part_config, part_shas, read_part
from latentcast.codec.runtime.decode import decode_movie
from latentcast.codec.runtime.scene_decoders import model_decoders
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.store import Store

TOKEN = "web-decoder-token"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Runs one of a module's functions (decoder.js's unless named) on base64 arguments in the page;
# bytes come back base64, anything else as it is, and an error as {"error": message}.
CALL = """import('/web/%s.js').then(m => {
  const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const out = (v) => v instanceof Uint8Array ? {b64: btoa(Array.from(v, (c) => String.fromCharCode(c)).join(''))} : v;
  try { return out(m[%s](...%s.map((a) => typeof a === 'string' && a.startsWith('b64:') ? bytes(a.slice(4)) : a))); }
  catch (e) { return {error: e.message, ours: !m.DecoderError || e instanceof m.DecoderError}; }
})"""


@pytest.fixture(scope="module")
def served(parted_model, two_scene_clip, tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (the README's test command does)")
    store = Store(tmp_path_factory.mktemp("webdec") / "s", create=True)
    rec = store.ingest(str(two_scene_clip), parted_model, title="two", progress=False)
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        browser = Browser(binary)
        try:
            browser.goto(f"{srv.http_url}/healthz")  # any page of the server's origin can import the module
            browser.wait_for("document.readyState === 'complete'")
            yield browser, srv, store, rec
        finally:
            browser.close()


def call(browser, name: str, *args, module: str = "decoder"):
    wire = [f"b64:{b64(a)}" if isinstance(a, bytes) else a for a in args]
    value = browser.evaluate(CALL % (module, json.dumps(name), json.dumps(wire)))
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    return value


def test_sha256_and_the_rans_coder_match_python_bit_for_bit(served):
    browser = served[0]
    rng = np.random.default_rng(7)
    for n in (0, 1, 55, 56, 63, 64, 1000, 70_001):
        data = rng.integers(0, 256, n, np.uint8).tobytes()
        assert call(browser, "sha256Hex", data) == hashlib.sha256(data).hexdigest(), n
    cases = [
        np.zeros(0, np.int8), np.full(1, -128, np.int8), np.full(5000, 3, np.int8),  # empty, one symbol, one value
        np.clip(np.round(rng.laplace(0, 2, 40_000)), -127, 127).astype(np.int8),  # dense weight-like codes
        np.where(rng.random(300_000) < 0.85, 0, rng.integers(-60, 60, 300_000)).astype(np.int8),  # pruned
        rng.integers(-128, 128, 9_999).astype(np.int8),  # every symbol
    ]
    for codes in cases:
        raw = codes.tobytes()
        for lanes in (None, 1, 7):
            if lanes == 1 and len(raw) > 60_000:
                continue  # one lane would take more steps than the decoder accepts
            payload = rans.encode(raw, lanes)
            assert call(browser, "ransDecode", payload, len(raw)) == raw, (len(raw), lanes)
    payload = bytearray(rans.encode(cases[3].tobytes()))
    payload[-3] ^= 0x40  # a damaged word: a clear error of ours, never wrong codes
    got = call(browser, "ransDecode", bytes(payload), len(cases[3]))
    assert got.get("ours") and "rANS payload" in got["error"], got
    got = call(browser, "ransDecode", rans.encode(cases[3].tobytes())[:-2], len(cases[3]))
    assert got.get("ours") and "rANS payload" in got["error"], got


def test_xxh3_in_the_page_matches_python_on_every_length_path_and_refuses_a_damaged_chunk(served):
    import xxhash

    from latentcast.codec.format.container import chunk_checksum

    browser = served[0]
    rng = np.random.default_rng(11)
    # Each of XXH3's paths and its edges: 0, 1-3, 4-8, 9-16, 17-128, 129-240, and the long hash
    # around its 64-byte stripes and 1,024-byte blocks.
    for n in (0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 32, 33, 64, 65, 96, 97, 128, 129, 143, 144, 239, 240, 241, 255,
              256, 1023, 1024, 1025, 1087, 1088, 2048, 2049, 5000, 70_001):
        data = rng.integers(0, 256, n, np.uint8).tobytes()
        assert call(browser, "xxh3Hex", data, module="xxh3") == xxhash.xxh3_64_hexdigest(data), n
    payload = rng.integers(0, 256, 3000, np.uint8).tobytes()
    good = str(chunk_checksum(40, 20, payload))
    assert call(browser, "checksumMatches", 40, 20, payload, good, module="xxh3") is True
    damaged = bytearray(payload)
    damaged[1234] ^= 1
    for args in ((40, 20, bytes(damaged), good), (41, 20, payload, good), (40, 19, payload, good),
                 (40, 20, payload, "1" + good), (40, 20, payload, None), (40, 20, payload, "0x12")):
        assert call(browser, "checksumMatches", *args, module="xxh3") is False, args[:2]


def test_zstd_in_the_page_inflates_what_python_writes_and_refuses_a_frame_before_it_allocates(served):
    browser = served[0]
    rng = np.random.default_rng(3)
    sources = (b"", b"a", bytes(range(256)) * 9, rng.integers(0, 4, 400_000, np.uint8).tobytes())  # 400 kB: many blocks
    frames = [compressor().compress(d) for d in sources]
    for frame, n in zip(frames, (0, 1, 2304, 400_000)):
        assert call(browser, "inflateExact", frame, n, module="zstd") == zstandard.decompress(frame), n
    two = frames[2] + frames[3]  # frames back to back, as decompress_exact reads them
    assert call(browser, "inflateExact", two, 2304 + 400_000, module="zstd") == decompress_exact(two, 2304 + 400_000)

    def raw_frame(flags: bytes, content: bytes) -> bytes:  # one raw block, last
        return b"\x28\xb5\x2f\xfd" + flags + struct.pack("<I", len(content) << 3 | 1)[:3] + content

    # A 3-byte frame whose header claims 1.5 GB, and one that declares only a 1 GB window: fzstd
    # would allocate either before decoding a byte; the page refuses both from their headers.
    cases = [
        (raw_frame(b"\xa0" + struct.pack("<I", 1_500_000_000), b"abc"), 3, "declares more than 3 bytes"),
        (raw_frame(b"\x00\xa0", b"abc"), 3, "declares no content size"),
        (frames[2][:-3], 2305, "ends inside"),
        (frames[2] + b"\x00" * 8, 2305, "is not a zstd frame"),
        (frames[2], 2305, "declares 2304 bytes, expected 2305"),
    ]
    for payload, size, says in cases:
        got = call(browser, "inflateExact", payload, size, "a payload", module="zstd")
        assert isinstance(got, dict) and got["error"].startswith("a payload ") and says in got["error"], (says, got)


def test_the_download_inflates_to_the_decoder_file_with_every_span_kind(served, parted_model):
    browser = served[0]
    data = (parted_model / DECODER).read_bytes()
    wire = compress_decoder(data)
    assert call(browser, "decoderFile", wire, len(data)) == data
    # Force every weight tensor through rANS: the page must decode both kinds of span.
    from latentcast.codec.format import decoder_file

    old = decoder_file.RANS_MIN_SAVING
    decoder_file.RANS_MIN_SAVING = 10.0
    try:
        coded = compress_decoder(data)
    finally:
        decoder_file.RANS_MIN_SAVING = old
    kinds = {kind for kind, _, _ in decoder_file.wire_spans(coded)}
    assert kinds == {decoder_file.SPAN_ZSTD, decoder_file.SPAN_RANS}
    assert call(browser, "decoderFile", coded, len(data)) == data
    for bad, size in ((wire[:-5], len(data)), (wire, len(data) + 1), (wire, len(data) - 1)):
        got = call(browser, "decoderFile", bad, size)
        assert isinstance(got, dict) and got.get("ours"), got


def test_a_part_applied_in_the_page_gives_the_state_python_applies(served, parted_model):
    browser = served[0]
    cfg = load_config(parted_model)
    base_sha = cfg.decoder_sha256
    base = (parted_model / DECODER).read_bytes()
    with Container(served[2].movie_path(served[3].id)) as c:
        part_sha = c.header.parts[1][1]
    part = read_part(parted_model, part_sha)
    scene = call(browser, "applyPart", base, base_sha, part, part_sha)
    assert isinstance(scene, bytes) and len(scene) == len(base) and scene != base
    assert tensor_layout(scene) == tensor_layout(base)  # the base's layout, so the base's graph reads it
    want = apply_part(load_state_verified(base, base_sha, "base"), part, part_sha, base_sha)
    got = st_load(scene)
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
    for args, says in (((base, base_sha, part[:-1] + bytes([part[-1] ^ 1]), part_sha), "sha256 mismatch"),
                       ((base, "0" * 64, part, part_sha), "another base")):
        got = call(browser, "applyPart", *args)
        assert got.get("ours") and says in got["error"], got


def test_the_page_plays_both_scenes_from_the_download_every_viewer_gets(served, parted_model):
    browser, srv, store, rec = served
    with Container(store.movie_path(rec.id)) as c:
        offline = np.concatenate(list(decode_movie(c, model_decoders(parted_model, c.header.parts))))
        parts = c.header.parts
    browser.evaluate(f"sessionStorage.setItem('latentcast-token', '{TOKEN}'); true")
    browser.goto(f"{srv.http_url}/watch/{rec.id}")
    browser.wait_for("window.latentcast.ready.then(p => !!p)", timeout_s=120)
    h, w = offline.shape[1:3]
    for frame in (3, parts[1][0] + 2):  # one frame of each scene: the second through its part
        browser.evaluate(f"window.latentcast.ready.then(p => p.showFrame({frame}))")
        shown = canvas_pixels(browser, h, w)
        assert np.abs(shown.astype(int) - offline[frame].astype(int)).max() <= 1, frame
    downloaded = browser.evaluate("window.latentcast.ready.then(p => p.downloaded)")
    rec = store.get(rec.id)
    assert len(parts) == 2 and rec.part_bytes > 0
    # What `total` counts, each fetched once: the files, the base's graph (which outweighs its
    # config) and the few bytes that name each part's base, which the page takes from the header.
    named = sum(len(part_config(rec.decoder_sha256).encode()) for _ in part_shas(parts, rec.decoder_sha256))
    assert downloaded["decoder"] + downloaded["graph"] + named == rec.decoder_bytes + rec.part_bytes
    assert 0 < downloaded["graph"] < 0.1 * rec.decoder_bytes


"""The browser player in a real, headless Chromium: it asks for the token, decodes frames
in the page with ONNX Runtime Web, seeks, and shows what the offline decode shows."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import Browser, canvas_pixels, chromium_binary
from latentcast.codec.quality import PSNRMeter
from latentcast.server.app import ServerOptions, run_server

TOKEN = "browser-token"
ARTIFACTS = Path(os.environ.get("LATENTCAST_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))



@pytest.fixture(scope="module")
def page(store_with_movie):
    binary = chromium_binary()
    if binary is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (the README's test command does)")
    store, rec = store_with_movie
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        browser = Browser(binary)
        try:
            yield browser, srv, rec
        finally:
            browser.close()


def _psnr(a, b):
    meter = PSNRMeter()
    meter.update(a[None], b[None])
    return meter.psnr


def test_the_page_plays_seeks_and_shows_the_frames_the_offline_decode_shows(page, offline_frames):
    browser, srv, rec = page
    browser.goto(f"{srv.http_url}/watch/{rec.id}")
    browser.wait_for("document.getElementById('login').style.display === 'block'")  # asks for the token
    assert "token" not in browser.evaluate("location.href")
    browser.evaluate(f"document.getElementById('token').value = '{TOKEN}'; "
                     "document.getElementById('login').requestSubmit(); true")
    browser.wait_for("window.latentcast.ready.then(p => !!p)", timeout_s=120)
    assert TOKEN not in browser.evaluate("location.href")
    h, w = offline_frames.shape[1:3]
    shown = []
    for action in ("p.showFrame(5)", "p.showFrame(11)", "p.seek(20)"):  # the last through the seek path
        frame = browser.evaluate(f"window.latentcast.ready.then(p => {action})")
        shown.append(frame)
        pixels = canvas_pixels(browser, h, w)
        assert _psnr(pixels, offline_frames[frame]) >= 45, (frame, _psnr(pixels, offline_frames[frame]))
    assert shown == [5, 11, 20]
    assert browser.evaluate("document.getElementById('seek').value") == "20"
    # Playing moves on from the seek, at the movie's pace, and pause stops it.
    browser.evaluate("window.latentcast.ready.then(p => { p.play(); return true; })")
    browser.wait_for("window.latentcast.ready.then(p => p.frame >= 23)", timeout_s=30)
    fps = browser.evaluate("window.latentcast.ready.then(p => p.decodeFps())")
    assert fps > 0
    assert "decode" in browser.evaluate("document.getElementById('status').textContent")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "browser-player.png").write_bytes(browser.screenshot())


def test_a_wrong_token_and_a_missing_movie_show_a_message(page):
    browser, srv, rec = page
    browser.evaluate("sessionStorage.setItem('latentcast-token', 'wrong'); true")
    browser.goto(f"{srv.http_url}/watch/{rec.id}")
    assert browser.wait_for("document.getElementById('error').textContent") == "that token was refused"
    browser.evaluate(f"sessionStorage.setItem('latentcast-token', '{TOKEN}'); true")
    browser.goto(f"{srv.http_url}/watch/nosuchmovie")
    assert "no movie" in browser.wait_for("document.getElementById('error').textContent")


def test_a_chunk_damaged_on_the_way_is_refused_with_a_message(page):
    browser, srv, rec = page
    # One bit of every latent chunk the page receives flipped, as a faulty cache or proxy might:
    # the page must say so, not draw what the damaged codes decode to.
    flip = """(() => { const real = window.fetch; window.fetch = async (url, init) => {
      const r = await real(url, init);
      if (!String(url).includes('/chunks/')) return r;
      const body = new Uint8Array(await r.arrayBuffer()); body[body.length >> 1] ^= 1;
      return new Response(body, {status: r.status, headers: r.headers}); }; })();"""
    script = browser.send("Page.addScriptToEvaluateOnNewDocument", source=flip)["identifier"]
    try:
        browser.goto(f"{srv.http_url}/healthz")  # the origin whose tab keeps the token
        browser.wait_for("document.readyState === 'complete'")
        browser.evaluate(f"sessionStorage.setItem('latentcast-token', '{TOKEN}'); true")
        browser.goto(f"{srv.http_url}/watch/{rec.id}")
        message = browser.wait_for("document.getElementById('error').textContent", timeout_s=120)
        assert message == "chunk 0 failed its checksum", message
    finally:
        browser.send("Page.removeScriptToEvaluateOnNewDocument", identifier=script)


@pytest.mark.parametrize("kept", [False, True], ids=["opus", "aac-kept"])
def test_the_page_decodes_the_sound_and_plays_it_on_the_frame_clock(trained_model, tmp_path, kept):
    from latentcast.codec import audio
    from latentcast.codec.format.container import Container
    from latentcast.server.store import Store
    from synthetic import flash_and_click, write_clip_with_sound

    fps, n = 12, 48
    frames, pcm = flash_and_click(n, fps, 30)
    click = round(30 / fps * 48000)  # at frame 30: 6 frames into chunk 2 (chunks of 12 frames)
    if kept:  # an AAC track kept as it was (--audio copy): WebCodecs decodes AAC too
        src = write_clip_with_sound(tmp_path / "loud.mp4", frames, fps, pcm, codec="aac", rate=48000)
    else:
        src = write_clip_with_sound(tmp_path / "loud.mkv", frames, fps, pcm)
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(src), trained_model, title="loud", chunk_seconds=1.0, progress=False,
                       audio_kbps="copy" if kept else 48)
    with Container(store.movie_path(rec.id)) as c:
        want = audio.decode_chunk(c.header.audio, c.read_audio(2), c.audio_chunks[2].n_frames)
    with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
        browser = Browser(chromium_binary())
        try:
            browser.goto(f"{srv.http_url}/watch/{rec.id}")
            browser.wait_for("window.latentcast.ready.then(p => !!p)", timeout_s=120)
            got = browser.evaluate("window.latentcast.ready.then(p => p.sound.chunk(2)).then(planes => "
                                   "Array.from(planes[0]))")
            assert "sound" in browser.evaluate("document.getElementById('status').textContent")
            browser.evaluate("window.latentcast.ready.then(p => { p.seek(20).then(() => p.play()); return true; })")
            browser.wait_for("window.latentcast.ready.then(p => p.frame >= 40 && p.sound.scheduled >= 2)",
                             timeout_s=30)
        finally:
            browser.close()
    got = np.asarray(got, np.float32)
    assert got.shape[0] == want.shape[1]  # the chunk's samples exactly
    assert abs(int(np.argmax(np.abs(got))) - (click - round(24 / fps * 48000))) <= 960  # the click, within 20 ms
    snr = 10 * np.log10((want ** 2).sum() / max(((want[0] - got) ** 2).sum(), 1e-12))
    assert snr >= 30, snr  # the same packets, decoded by the browser


def test_the_seek_bar_shows_the_scene_thumbnail_under_the_pointer(trained_model, tmp_path):
    from latentcast.server.store import Store
    from synthetic import flash_and_click, write_clip_with_sound

    frames, pcm = flash_and_click(48, 12, 30)  # a cut at the flash: two scenes, two pictures
    src = write_clip_with_sound(tmp_path / "two.mkv", frames, 12, pcm)
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(src), trained_model, title="previews", progress=False)
    stored = store.thumbnails(rec.id)
    cues = [line.split("#xywh=")[1] for line in stored.vtt.splitlines() if "#xywh=" in line]
    assert stored.tiles == len(cues) >= 2
    with run_server(store, ServerOptions(tokens=[TOKEN], http_listen="127.0.0.1:0")) as srv:
        browser = Browser(chromium_binary())
        try:
            browser.goto(f"{srv.http_url}/watch/{rec.id}")
            browser.evaluate(f"sessionStorage.setItem('latentcast-token', '{TOKEN}'); location.reload(); true")
            browser.wait_for("window.latentcast.ready.then(p => !!p && !!p.previews)", timeout_s=120)
            assert browser.evaluate("window.latentcast.ready.then(p => p.previews.cues.length)") == len(cues)
            shown = []
            for fraction in (0.1, 0.95):  # early in the first scene, late in the last
                shown.append(browser.evaluate(f"""(() => {{
                  const bar = document.getElementById('seek'), r = bar.getBoundingClientRect();
                  bar.dispatchEvent(new MouseEvent('mousemove', {{clientX: r.left + {fraction} * r.width,
                                                                  clientY: r.top + 2, bubbles: true}}));
                  const box = document.getElementById('preview').style;
                  return [box.display, box.backgroundPosition, box.width, box.backgroundImage.slice(0, 9)];
                }})()"""))
            loaded = browser.evaluate("window.latentcast.ready.then(p => new Promise((ok, bad) => { "
                                      "const im = new Image(); im.onload = () => ok([im.naturalWidth, "
                                      "im.naturalHeight]); im.onerror = bad; im.src = p.previews.url; }))")
        finally:
            browser.close()
    for (display, position, width, image), cue in zip(shown, (cues[0], cues[-1])):
        x, y, w, _h = map(int, cue.split(","))
        assert display == "block" and position == f"{-x}px {-y}px" and width == f"{w}px"
        assert image == 'url("blob'
    with Image.open(io.BytesIO(stored.sprite)) as sprite:
        assert loaded == [sprite.width, sprite.height]  # the page decoded the sprite the store holds

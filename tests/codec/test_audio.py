"""The sound from source to playback: coded in chunks, stored, streamed, muxed, in sync."""

import numpy as np
import pytest

import latentcast
from latentcast.codec import audio
from latentcast.codec.format.container import Container
from latentcast.codec.format.errors import CorruptContainer
from latentcast.commands import decode
from latentcast.server.app import ServerOptions, run_server
from latentcast.server.store import Store
from synthetic import (
    click_time,
    flash_and_click,
    flash_time,
    music_like,
    read_sound,
    speech_like,
    write_clip,
    write_clip_with_sound,
)

FPS, FRAMES, FLASH = 12, 48, 30  # 4 s; a white frame and a click at 2.5 s


def _flash_and_click(seconds: float, click_at: float) -> tuple[np.ndarray, np.ndarray]:
    if seconds == FRAMES / FPS:
        return flash_and_click(FRAMES, FPS, FLASH)
    frames, _ = flash_and_click(FRAMES, FPS, FLASH)  # a shorter sound, its click where asked
    pcm = music_like(seconds) * 0.3
    pcm[0, round(click_at * 48000) : round(click_at * 48000) + 48] = 0.95
    return frames, pcm


def _snr_aligned(x: np.ndarray, y: np.ndarray) -> float:
    """SNR of y against x after the best shift within 20 ms (codecs may delay a little)."""
    n = min(x.shape[1], y.shape[1]) - 2000
    best = -np.inf
    for lag in range(-960, 961, 8):
        a, b = x[:, 1000 : 1000 + n - 1000], y[:, 1000 + lag : 1000 + lag + n - 1000]
        best = max(best, 10 * np.log10((a ** 2).sum() / max(((a - b) ** 2).sum(), 1e-12)))
    return best


def _flash_time(path) -> float:
    return flash_time(path, FPS)


_click_time = click_time


@pytest.mark.parametrize("make", [music_like, speech_like])
def test_chunks_decode_alone_to_their_spans_at_12_db_or_better(make):
    x = make(4.0)
    spans = audio.chunk_spans([0, 25, 50, 75], 100, 25)
    info, payloads = audio.encode_chunks(x, spans, audio.DEFAULT_KBPS)
    pieces = [audio.decode_chunk(info, p, b - a) for p, (a, b) in zip(payloads, spans)]
    assert [p.shape[1] for p in pieces] == [b - a for a, b in spans]  # sample for sample
    y = np.concatenate(pieces, axis=1)
    assert 10 * np.log10((x ** 2).sum() / ((x - y) ** 2).sum()) >= 12
    with pytest.raises(CorruptContainer):
        audio.decode_chunk(info, payloads[1][:-7], spans[1][1] - spans[1][0])


def test_decode_muxes_the_sound_in_sync(trained_model, tmp_path):
    frames, pcm = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    src = write_clip_with_sound(tmp_path / "src.mkv", frames, FPS, pcm)
    movie = tmp_path / "m.lcv"
    res = latentcast.encode(src, trained_model, movie, chunk_seconds=1.0)
    assert res.audio_bytes > 0
    with Container(movie) as c:
        assert c.header.version == 4 and c.header.audio.channels == 1 and len(c.audio_chunks) == len(c.chunks)
    for out in ("out.mkv", "out.mp4"):
        assert decode.main([str(movie), "--model", str(trained_model), "-o", str(tmp_path / out), "-q"]) == 0
        sound = read_sound(tmp_path / out)
        assert abs(sound.shape[1] / 48000 - FRAMES / FPS) <= 0.02 + (1024 / 48000 if out.endswith("mp4") else 0)
        assert abs(_click_time(sound) - _flash_time(tmp_path / out)) <= 0.02
        assert _snr_aligned(pcm, sound) >= 12 - (0 if out.endswith("mkv") else 1)
    # from frame 18: the sound starts with the picture
    assert decode.main([str(movie), "--model", str(trained_model), "-o", str(tmp_path / "seek.mkv"),
                        "--start", "18", "-q"]) == 0
    sound = read_sound(tmp_path / "seek.mkv")
    assert abs(sound.shape[1] / 48000 - (FRAMES - 18) / FPS) <= 0.02
    assert abs(_click_time(sound) - (FLASH - 18) / FPS) <= 0.02
    assert decode.main([str(movie), "--model", str(trained_model), "-o", str(tmp_path / "pic.y4m"), "-q"]) == 0


def test_a_late_sound_keeps_its_offset_and_a_silent_source_stays_version_3(trained_model, tmp_path):
    frames, pcm = _flash_and_click(FRAMES / FPS - 0.5, FLASH / FPS - 0.5)  # the click still at the flash
    src = write_clip_with_sound(tmp_path / "late.mkv", frames, FPS, pcm, audio_start_s=0.5)
    movie = tmp_path / "late.lcv"
    latentcast.encode(src, trained_model, movie)
    assert decode.main([str(movie), "--model", str(trained_model), "-o", str(tmp_path / "late-out.mkv"), "-q"]) == 0
    sound = read_sound(tmp_path / "late-out.mkv")
    assert np.abs(sound[:, : 48000 * 4 // 10]).max() < 0.01  # silence before the sound starts
    assert abs(_click_time(sound) - FLASH / FPS) <= 0.02
    silent = write_clip(tmp_path / "silent.mkv", frames)
    latentcast.encode(silent, trained_model, tmp_path / "silent.lcv")
    latentcast.encode(src, trained_model, tmp_path / "dropped.lcv", audio_kbps=None)
    for name in ("silent.lcv", "dropped.lcv"):
        with Container(tmp_path / name) as c:
            assert c.header.version == 3 and c.header.audio is None and not c.audio_chunks


def test_playback_streams_the_sound_with_the_latents(trained_model, tmp_path):
    frames, pcm = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    src = write_clip_with_sound(tmp_path / "src.mkv", frames, FPS, pcm)
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(src), trained_model, title="loud", chunk_seconds=1.0, progress=False)
    assert rec.audio_bytes > 0 and rec.audio_kbps > 0
    with run_server(store, ServerOptions(http_listen="127.0.0.1:0")) as srv:
        with latentcast.Client(srv.address, cache_dir=tmp_path / "c") as client:
            assert client.movie(rec.id).audio_kbps == pytest.approx(rec.audio_kbps)
            whole = client.play(rec.id, tmp_path / "all.mkv")
            client.play(rec.id, tmp_path / "seek.mkv", start=20)
        with latentcast.Client(srv.http_url, cache_dir=tmp_path / "h") as client:  # over HTTP, its own URLs
            over_http = client.play(rec.id, tmp_path / "http.mkv", start=5)
    assert whole.audio_bytes > 0 and whole.audio_kbps > 0 and over_http.audio_bytes > 0
    assert any(line.startswith("sound") and "kbit/s Opus" in line for line in whole.lines())
    for out, first in (("all.mkv", 0), ("seek.mkv", 20), ("http.mkv", 5)):
        sound = read_sound(tmp_path / out)
        assert abs(sound.shape[1] / 48000 - (FRAMES - first) / FPS) <= 0.02
        assert abs(_click_time(sound) - (FLASH - first) / FPS) <= 0.02


def test_damaged_or_lying_sound_is_refused_and_the_picture_before_it_plays(trained_model, tmp_path):
    from latentcast.client.session import ServerError
    from latentcast.client.wire import chunk_sound
    from latentcast.codec.format.errors import ModelError
    from latentcast.proto import latentcast_pb2 as pb

    frames, pcm = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    src = write_clip_with_sound(tmp_path / "src.mkv", frames, FPS, pcm)
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(src), trained_model, title="loud", chunk_seconds=1.0, progress=False)
    path = store.movie_path(rec.id)
    with Container(path) as c:
        victim, chunk, sound = c.audio_chunks[2], c.chunks[2], c.read_audio(2)
        payload, info = c.read_payload(2), c.header.audio
    # A server that sends the sound of one chunk with another, or with a wrong checksum, is refused.
    with run_server(store) as srv, latentcast.Client(srv.address, cache_dir=tmp_path / "c") as client:
        movie = client.movie(rec.id)
    honest = pb.LatentChunk(start_frame=chunk.start, n_frames=chunk.n_frames, payload=payload, checksum=chunk.checksum,
                            audio=sound, audio_samples=victim.n_frames, audio_checksum=victim.checksum)
    assert chunk_sound(movie, honest, info, chunk.start, chunk.end).shape[1] == victim.n_frames
    for lie in (dict(audio_checksum=victim.checksum ^ 1), dict(audio_samples=victim.n_frames + 1),
                dict(audio=sound[:-3])):
        lying = pb.LatentChunk()
        lying.CopyFrom(honest)
        for k, v in lie.items():
            setattr(lying, k, v)
        with pytest.raises(ModelError, match="sound"):
            chunk_sound(movie, lying, info, chunk.start, chunk.end)
    raw = bytearray(path.read_bytes())
    raw[victim.payload_offset + 10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with Container(path) as c, pytest.raises(CorruptContainer, match="audio chunk 2"):
        c.read_audio(2)
    with run_server(store) as srv, latentcast.Client(srv.address, cache_dir=tmp_path / "c") as client:
        with pytest.raises(ServerError, match="audio chunk 2"):
            client.play(rec.id, tmp_path / "bad.mkv")
        assert client.play(rec.id, tmp_path / "before.mkv", count=24).frames == 24  # chunks 0 and 1
    assert not (tmp_path / "bad.mkv").exists()


def _source_packets(path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.mark.parametrize("codec, rate", [("libopus", 48000), ("aac", 44100)])
def test_audio_copy_keeps_the_source_packets_and_the_sync(trained_model, tmp_path, codec, rate):
    frames, pcm = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    src = write_clip_with_sound(tmp_path / "src.mp4", frames, FPS, pcm, codec=codec, rate=rate)
    movie = tmp_path / "kept.lcv"
    latentcast.encode(src, trained_model, movie, chunk_seconds=1.0, audio_kbps="copy")
    source_packets = set(_source_packets(src))
    with Container(movie) as c:
        info = c.header.audio
        assert (info.codec, info.rate, info.copied) == (codec.removeprefix("lib"), rate, True)
        kept = []
        for i in range(len(c.audio_chunks)):
            payload, at = c.read_audio(i), 4
            while at < len(payload):
                n = int.from_bytes(payload[at : at + 2], "little")
                kept.append(payload[at + 2 : at + 2 + n])
                at += 2 + n
        # every packet stored is one of the source's, byte for byte, and every source packet is kept
        assert set(kept) <= source_packets and len(set(kept)) >= len(source_packets) - 1
        reference = audio.read_audio(str(src))  # what a player of the source itself would hear
        spans = [(audio.frame_sample(ch.start, FPS), audio.frame_sample(ch.end, FPS)) for ch in c.chunks]
        pieces = [audio.decode_chunk(info, c.read_audio(i), b - a) for i, (a, b) in enumerate(spans)]
    assert [p.shape[1] for p in pieces] == [b - a for a, b in spans]
    # against the source's own decode: the same samples but where a chunk's decoder starts cold
    assert _snr_aligned(reference, np.concatenate(pieces, axis=1)) >= 25
    assert decode.main([str(movie), "--model", str(trained_model), "-o", str(tmp_path / "out.mkv"), "-q"]) == 0
    sound = read_sound(tmp_path / "out.mkv")
    assert abs(sound.shape[1] / 48000 - FRAMES / FPS) <= 0.02
    assert abs(_click_time(sound) - _flash_time(tmp_path / "out.mkv")) <= 0.02
    for start in (18, 25):  # a seek lands inside a chunk and after the click's chunk start
        out = tmp_path / f"seek{start}.mkv"
        assert decode.main([str(movie), "--model", str(trained_model), "-o", str(out), "--start", str(start),
                            "-q"]) == 0
        assert abs(_click_time(read_sound(out)) - (FLASH - start) / FPS) <= 0.02


def test_audio_copy_refuses_what_it_cannot_keep_and_a_short_track_is_padded(trained_model, tmp_path, caplog):
    from latentcast.commands import encode

    frames, pcm = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    flac = write_clip_with_sound(tmp_path / "flac.mkv", frames, FPS, pcm)
    code = encode.main([str(flac), "--model", str(trained_model), "-o", str(tmp_path / "x.lcv"), "--audio", "copy",
                        "-q"])
    assert code == 1 and not (tmp_path / "x.lcv").exists()
    # a track 1.5 s shorter than the picture, kept: the rest is silence, with a warning
    short = write_clip_with_sound(tmp_path / "short.mp4", frames, FPS, pcm[:, : 48000 * 5 // 2], codec="aac",
                                  rate=48000)
    with caplog.at_level("WARNING"):
        latentcast.encode(short, trained_model, tmp_path / "short.lcv", chunk_seconds=1.0, audio_kbps="copy")
    assert any("before the picture" in r.getMessage() for r in caplog.records)
    assert decode.main([str(tmp_path / "short.lcv"), "--model", str(trained_model), "-o",
                        str(tmp_path / "short.mkv"), "-q"]) == 0
    sound = read_sound(tmp_path / "short.mkv")
    assert abs(sound.shape[1] / 48000 - FRAMES / FPS) <= 0.02
    assert np.abs(sound[:, 48000 * 27 // 10 :]).max() < 0.01  # silence after the track's end


def test_a_sound_much_longer_than_the_picture_is_cut_with_a_warning(trained_model, tmp_path, caplog):
    frames, _ = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    src = write_clip_with_sound(tmp_path / "long.mkv", frames, FPS, music_like(FRAMES / FPS + 2.0) * 0.3)
    with caplog.at_level("WARNING"):
        latentcast.encode(src, trained_model, tmp_path / "long.lcv", chunk_seconds=1.0)
    assert any("past the picture's end" in r.getMessage() for r in caplog.records)
    assert decode.main([str(tmp_path / "long.lcv"), "--model", str(trained_model), "-o", str(tmp_path / "l.mkv"),
                        "-q"]) == 0
    assert abs(read_sound(tmp_path / "l.mkv").shape[1] / 48000 - FRAMES / FPS) <= 0.02


def test_realtime_playback_on_stdout_keeps_picture_and_sound_together(trained_model, tmp_path):
    """`play --realtime -o -` as a viewer pipes it into ffplay: packets arrive paced, the sound
    never behind the picture on the wire, and the click plays with the flash."""
    import os
    import subprocess
    import sys
    import time

    import av

    frames, pcm = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    src = write_clip_with_sound(tmp_path / "src.mkv", frames, FPS, pcm)
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(src), trained_model, title="live", chunk_seconds=1.0, progress=False)
    arrivals, brightness, sound = [], [], []
    with run_server(store, ServerOptions()) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "latentcast", "play", rec.id, "--server", srv.address,
                                 "--realtime", "-o", "-", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "LATENTCAST_CACHE": str(tmp_path / "cache")})
        with av.open(proc.stdout, format="matroska") as piped:
            for packet in piped.demux():
                if packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                arrivals.append((packet.stream.type, t, time.monotonic()))
                for decoded in packet.decode():
                    if packet.stream.type == "video":
                        brightness.append((t, decoded.to_ndarray(format="rgb24").mean()))
                    else:
                        sound.append(decoded.to_ndarray().reshape(1, -1))  # mono: the source's channels
        assert proc.wait(30) == 0, proc.stderr.read().decode()[-500:]
    video = [(t, w) for kind, t, w in arrivals if kind == "video"]
    lead = [w - t for t, w in video]  # wall clock minus picture time: flat when paced
    assert max(lead) - min(lead) <= 0.6, lead
    heard = -1.0
    for kind, t, _w in arrivals:  # the sound on the wire is never behind the picture by more than a coder frame
        if kind == "audio":
            heard = max(heard, t)
        elif t > 0.2:
            assert heard >= t - 0.25, (t, heard)
    flash = max(brightness, key=lambda x: x[1])[0]
    assert abs(_click_time(np.concatenate(sound, axis=1)) - flash) <= 0.02


def test_a_sound_pyav_cannot_decode_is_one_line_at_ingest_and_stores_nothing(trained_model, tmp_path, capsys):
    from latentcast.commands import ingest

    frames, pcm = _flash_and_click(FRAMES / FPS, FLASH / FPS)
    flac = write_clip_with_sound(tmp_path / "flac.mkv", frames, FPS, pcm).read_bytes()
    alien = tmp_path / "alien.mkv"  # the same file, its audio's codec id one no decoder knows
    alien.write_bytes(flac.replace(b"A_FLAC", b"A_QXYZ"))
    base = [str(alien), "--model", str(trained_model), "--store", str(tmp_path / "s"), "-q"]
    for extra in ([], ["--audio", "copy"]):
        assert ingest.main(base + extra) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot decode" in err and "--no-audio" in err, err
    assert Store(tmp_path / "s", create=True).list() == []
    assert ingest.main(base + ["--no-audio"]) == 0
    assert len(Store(tmp_path / "s").list()) == 1

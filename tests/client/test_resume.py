"""The server is killed (SIGKILL) mid-stream and restarted: playback resumes, every frame once."""

import faulthandler
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from latentcast.client.player import play
from latentcast.client.session import Session
from latentcast.codec import video


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(store_root, port, *extra: str, paced: bool = True):
    # Paced, so most of the movie is still unsent when the server dies.
    pacing = ["--max-lead", "0.25"] if paced else []
    proc = subprocess.Popen([sys.executable, "-m", "latentcast", "serve", "--store", str(store_root), "--listen",
                             f"127.0.0.1:{port}", *pacing, *extra], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # "serving ..." once the port is bound
    assert "serving" in line, line
    return proc


def _play_through_a_kill(store_root, movie_id: str, tmp_path):
    """Play the movie into tmp_path/out.mkv while its server is SIGKILLed two batches in and
    restarted; returns the summary and the server processes."""
    port = _free_port()
    procs = [_start(store_root, port)]
    state = {"batches": 0}

    def on_frames(frames):
        state["batches"] += 1
        if state["batches"] == 2:  # a few frames in: kill it hard, then bring it back
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            time.sleep(0.3)
            procs.append(_start(store_root, port))

    try:
        with Session(f"127.0.0.1:{port}", cache_dir=tmp_path / "cache", retry_s=20) as s:
            summary = play(s, movie_id, str(tmp_path / "out.mkv"), batch=1, progress=False, on_frames=on_frames,
                           buffer_s=0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
    return summary, procs


def test_server_killed_and_restarted_mid_stream(long_store, tmp_path):
    store, rec, offline_frames = long_store
    summary, procs = _play_through_a_kill(store.root, rec.id, tmp_path)
    got = np.stack(list(video.read_frames(tmp_path / "out.mkv")))
    assert len(procs) == 2
    assert summary.reconnects >= 1
    assert got.shape == offline_frames.shape, got.shape
    assert np.array_equal(got, offline_frames)


def test_ten_streams_survive_a_server_kill(long_store, tmp_path):
    import threading

    store, rec, offline_frames = long_store
    port = _free_port()
    procs = [_start(store.root, port)]
    started = threading.Barrier(11)
    results, errors = {}, []

    def viewer(i):
        first = [True]

        def on_frames(_):
            if first[0]:
                first[0] = False
                started.wait(30)

        try:
            with Session(f"127.0.0.1:{port}", cache_dir=tmp_path / f"c{i}", retry_s=20) as s:
                results[i] = play(s, rec.id, str(tmp_path / f"o{i}.mkv"), batch=1, progress=False, buffer_s=0,
                                  on_frames=on_frames)
        except Exception as e:  # asserted below
            errors.append(e)

    # Daemon threads and one deadline for all: a stalled viewer fails the test with every
    # thread's stack printed, instead of holding the run until CI's limit.
    threads = [threading.Thread(target=viewer, args=(i,), daemon=True) for i in range(10)]
    try:
        [t.start() for t in threads]
        started.wait(60)  # every viewer has frames, none has all (the server paces them)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        procs.append(_start(store.root, port))
        deadline = time.monotonic() + 120
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            faulthandler.dump_traceback(all_threads=True)
        assert not stuck, f"viewers still playing after 120 s: {stuck}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
    assert not errors, errors
    for i in range(10):
        assert results[i].reconnects >= 1
        got = np.stack(list(video.read_frames(tmp_path / f"o{i}.mkv")))
        assert np.array_equal(got, offline_frames)


def test_picture_and_sound_resume_together(trained_model, tmp_path):
    from latentcast.server.store import Store
    from synthetic import click_time, flash_and_click, flash_time, read_sound, write_clip_with_sound

    fps, n, flash = 12, 96, 80  # 8 s; the flash and click come after the restart
    frames, pcm = flash_and_click(n, fps, flash)
    src = write_clip_with_sound(tmp_path / "src.mkv", frames, fps, pcm)
    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(src), trained_model, title="loud", chunk_seconds=0.25, progress=False)
    summary, procs = _play_through_a_kill(store.root, rec.id, tmp_path)
    assert len(procs) == 2 and summary.reconnects >= 1 and summary.frames == n
    sound = read_sound(tmp_path / "out.mkv")
    assert abs(sound.shape[1] / 48000 - n / fps) <= 0.02  # no sound lost or doubled across the resume
    assert abs(click_time(sound) - flash_time(tmp_path / "out.mkv", fps)) <= 0.02


def test_a_scene_part_due_while_the_server_is_down_comes_when_it_is_back(parted_model, two_scene_clip, tmp_path):
    """Resume across a part boundary: the server dies in the first scene and comes back 2 s
    later; meanwhile playback reaches the second scene, whose part must wait for the server
    rather than end the play."""
    import json
    import threading

    import latentcast
    from latentcast.codec.nn.config import load_config
    from latentcast.codec.nn.part_index import load_part_index
    from latentcast.server.store import Store

    store = Store(tmp_path / "s", create=True)
    rec = store.ingest(str(two_scene_clip), parted_model, title="Two", chunk_seconds=0.25, progress=False)
    offline = np.stack(list(latentcast.decode(store.movie_path(rec.id), parted_model)))
    second = load_part_index(parted_model, load_config(parted_model).decoder_sha256).parts[1].sha256
    port, log = _free_port(), tmp_path / "access.jsonl"
    # Unpaced: the whole stream is with the client before the kill, so what it still needs from
    # the server when it reaches frame 24 is the second scene's part alone.
    procs = [_start(store.root, port, paced=False)]
    restart = threading.Timer(2.0, lambda: procs.append(_start(store.root, port, "--access-log", str(log),
                                                                paced=False)))

    def on_frames(frames):
        if len(procs) == 1 and procs[0].poll() is None and on_frames.seen >= 8:
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            restart.start()
        on_frames.seen += len(frames)

    on_frames.seen = 0
    try:
        with Session(f"127.0.0.1:{port}", cache_dir=tmp_path / "cache", retry_s=20) as s:
            summary = play(s, rec.id, str(tmp_path / "out.mkv"), batch=1, progress=False, on_frames=on_frames,
                           buffer_s=0)
    finally:
        restart.join(10)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
    assert len(procs) == 2 and summary.parts_fetched == 2
    assert np.array_equal(np.stack(list(video.read_frames(tmp_path / "out.mkv"))), offline)
    # The second scene's part came from the restarted server: it was due while the first was gone.
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(c.get("method", "").endswith("GetDecoder") and second in json.dumps(c) for c in calls), calls

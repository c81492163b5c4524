"""store check / --repair, and ingest killed with SIGKILL at random moments."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from latentcast.codec.format.container import Container
from latentcast.commands import store as store_cmd
from latentcast.server.store import Store, check_store


def _copy(store_with_movie, tmp_path):
    src, _ = store_with_movie
    shutil.copytree(src.root, tmp_path / "s")
    return Store(tmp_path / "s")


def test_sound_store_checks_clean(store_with_movie, tmp_path, capsys):
    store = _copy(store_with_movie, tmp_path)
    assert store_cmd.main(["check", "--store", str(store.root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] and report["movies_ok"] == 1


def test_damage_is_named_and_never_repaired_away(store_with_movie, tmp_path, capsys):
    store = _copy(store_with_movie, tmp_path)
    rec = store.list()[0]
    path = store.movie_path(rec.id)
    with Container(path) as c:
        victim = c.chunks[2]
    raw = bytearray(path.read_bytes())
    raw[victim.payload_offset + 2] ^= 0x10
    path.write_bytes(bytes(raw))
    (store.root / "movies" / ".abc.lcv.123.tmp").write_bytes(b"half")
    assert store_cmd.main(["check", "--store", str(store.root), "--repair", "--min-age", "0"]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "frames 6-8" in out
    assert "REMOVED" in out and ".abc.lcv.123.tmp" in out
    assert path.exists() and store.get(rec.id)  # the damaged movie is still there
    assert not (store.root / "movies" / ".abc.lcv.123.tmp").exists()


def test_young_orphans_are_left_for_a_running_ingest(store_with_movie, tmp_path):
    store = _copy(store_with_movie, tmp_path)
    (store.root / "movies" / "0123456789ab.lcv").write_bytes(b"x")
    report = check_store(store, repair=True)  # default: only orphans older than 10 minutes
    assert report.orphans and not report.removed and not report.clean


def test_ingest_killed_at_random_moments_leaves_a_consistent_store(trained_model, clip, tmp_path):
    """SIGKILL an ingest at random moments: the store stays consistent, and a re-run succeeds."""
    root = tmp_path / "s"
    Store(root, create=True)
    rng = random.Random(1234)
    cmd = [sys.executable, "-m", "latentcast", "ingest", str(clip), "--model", str(trained_model), "--store",
           str(root), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t = time.monotonic()
    full = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert full.returncode == 0, full.stderr
    duration = time.monotonic() - t
    kills = int(os.environ.get("LATENTCAST_INGEST_KILLS", "5"))
    for _ in range(kills):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.3, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        report = check_store(Store(root), repair=True, min_orphan_age_s=0)
        assert not report.damaged, report.damaged
        assert report.clean
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    store = Store(root)
    assert again.stdout.strip().splitlines()[-1] in {m.id for m in store.list()}
    assert check_store(store).clean

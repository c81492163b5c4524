"""latentcast scenes: cuts and scenes from the latents, and chapter files ffmpeg reads back."""

import json

import av
import numpy as np
import pytest

import latentcast
from latentcast.codec.format.container import Container
from latentcast.codec.scenes import Chapter, group_shots
from latentcast.commands import scenes


def test_neighbouring_shots_of_one_picture_are_one_scene_and_others_are_not():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 64), rng.normal(0, 1, 64)
    shot = lambda mean, n: mean + rng.normal(0, 0.05, (n, 64))  # noqa: E731
    z = np.concatenate([shot(a, 20), shot(a, 15), shot(b, 25), shot(a, 10)])
    assert group_shots(z, [20, 35, 60]) == [Chapter(0, 35, 2), Chapter(35, 60, 1), Chapter(60, 70, 1)]
    assert group_shots(z, [20, 35, 60], distance=100) == [Chapter(0, 70, 4)]
    assert group_shots(z, []) == [Chapter(0, 70, 1)]  # a single shot: one scene, no error


@pytest.mark.parametrize("from_container", [False, True])
def test_a_two_shot_movie_gives_its_cut_and_chapter_files(from_container, parted_model, two_scene_clip, tmp_path,
                                                          capsys):
    source = two_scene_clip
    if from_container:
        source = tmp_path / "two.lcv"
        latentcast.encode(two_scene_clip, parted_model, source)
    vtt, meta = tmp_path / "c.vtt", tmp_path / "c.txt"
    # Sensitivity 4, as the fixture's parts were cut: a 20-epoch model's latents jump less at a
    # cut. Distance 0: both synthetic shots are shapes moving about, whose mean latents are alike
    # (grouping is tested on latents made for it, above); here each shot is a chapter.
    args = [str(source), "--model", str(parted_model), "--sensitivity", "4", "--distance", "0"]
    assert scenes.main(args + ["--json", "--webvtt", str(vtt), "--ffmetadata", str(meta)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found == {"cuts": [24],
                     "scenes": [{"start": 0, "end": 24, "shots": 1}, {"start": 24, "end": 48, "shots": 1}]}
    assert vtt.read_text().splitlines()[:4] == ["WEBVTT", "", "1", "00:00:00.000 --> 00:00:02.000"]
    with av.open(str(meta), format="ffmetadata") as c:  # ffmpeg itself reads the chapters back
        chapters = c.chapters()
    assert [(float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"])) for ch in chapters] == \
        [(0.0, 2.0), (2.0, 4.0)]
    assert scenes.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("scene   2  frames      24-47")


def test_a_container_of_another_model_is_one_line(trained_model, parted_model, two_scene_clip, tmp_path, capsys):
    movie = tmp_path / "two.lcv"
    latentcast.encode(two_scene_clip, parted_model, movie)
    code = scenes.main([str(movie), "--model", str(trained_model)])
    err = capsys.readouterr().err
    assert code == 1 and "another model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_decode_writes_the_scenes_as_chapters(ext, parted_model, two_scene_clip, tmp_path):
    from latentcast.codec.chapters import chapters_within
    from latentcast.commands import decode

    movie = tmp_path / "two.lcv"
    latentcast.encode(two_scene_clip, parted_model, movie)
    out = tmp_path / f"o.{ext}"
    assert decode.main([str(movie), "--model", str(parted_model), "-o", str(out), "--start", "6", "-q"]) == 0
    with av.open(str(out)) as c:
        got = [(round(float(ch["start"] * ch["time_base"]) * 12), round(float(ch["end"] * ch["time_base"]) * 12))
               for ch in c.chapters()]
    expected = chapters_within(latentcast.scenes(movie, parted_model).scenes, 6, 48)
    assert got == [(c.start, c.end) for c in expected] and got[0][0] == 0 and got[-1][1] == 42
    assert chapters_within([Chapter(0, 24, 1), Chapter(24, 48, 2)], 6, 30) == [Chapter(0, 18, 1), Chapter(18, 24, 2)]
    bare = tmp_path / f"bare.{ext}"
    assert decode.main([str(movie), "--model", str(parted_model), "-o", str(bare), "--no-chapters", "-q"]) == 0
    with av.open(str(bare)) as c:
        assert c.chapters() == []


def test_the_encoder_stores_the_scenes_it_finds_on_its_float_latents(parted_model, two_scene_clip, tmp_path):
    movie = tmp_path / "two.lcv"
    latentcast.encode(two_scene_clip, parted_model, movie)
    stored = latentcast.scenes(movie, parted_model)
    from_video = latentcast.scenes(two_scene_clip, parted_model)  # the encoder's latents, same defaults
    assert (stored.cuts, stored.scenes) == (from_video.cuts, from_video.scenes) and stored.scenes
    with Container(movie) as c:
        assert c.header.scenes == tuple((s.start, s.shots) for s in stored.scenes)
        assert c.header.cuts == tuple(stored.cuts)


def test_play_writes_the_stored_scenes_as_chapters(store_with_movie, tmp_path):
    from latentcast.client.player import play
    from latentcast.client.session import Session
    from latentcast.codec.chapters import chapters_within, stored_chapters
    from latentcast.server.app import run_server

    store, rec = store_with_movie
    with Container(store.movie_path(rec.id)) as c:
        expected = chapters_within(stored_chapters(c.header.scenes, c.header.frames), 3, 24)
    assert expected
    with run_server(store) as srv, Session(srv.address, cache_dir=tmp_path / "c") as s:
        play(s, rec.id, str(tmp_path / "p.mkv"), start=3, progress=False)
    with av.open(str(tmp_path / "p.mkv")) as c:
        got = [(round(float(ch["start"] * ch["time_base"]) * 12), round(float(ch["end"] * ch["time_base"]) * 12))
               for ch in c.chapters()]
    assert got == [(ch.start, ch.end) for ch in expected]


@pytest.mark.parametrize("cuts, scenes_, why", [
    ((5, 3), ((0, 3),), "rise"), ((0,), ((0, 2),), "rise"), ((5,), ((0, 1), (4, 1)), "start"),
    ((5,), ((0, 1),), "add up"), ((), ((0, 0),), "start"), ((5,), (), "without scenes")])
def test_a_header_with_bad_scenes_is_refused(cuts, scenes_, why, tmp_path):
    import numpy as np

    from latentcast.codec.format.container import scenes_problem, write_latents
    from latentcast.codec.format.errors import UsageError

    assert why in scenes_problem(cuts, scenes_, 10)
    with pytest.raises(UsageError, match=why):
        write_latents(np.zeros((10, 4), np.float32), (8, 8), 10, tmp_path / "x.lcv", 3, 5, "0" * 64, (), cuts, scenes_)

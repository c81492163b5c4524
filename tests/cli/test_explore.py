"""similar and inspect: the latent space as a tool, on a movie of two known shots (cut at 24)."""

import json

import numpy as np
import pytest
from PIL import Image

import latentcast
from latentcast.codec.explore.inspect import channel_directions, sweep
from latentcast.codec.explore.latents import all_latents
from latentcast.codec.format.container import Container
from latentcast.codec.nn.config import load_config
from latentcast.codec.runtime.decode import decode_latents
from latentcast.codec.runtime.scene_decoders import model_decoders
from latentcast.commands import inspect, similar
from latentcast.server.store import Store
from synthetic import make_frames, write_clip


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory, parted_model):
    """A moving shot, then a still one (a frame of another clip, held), through the model with
    scene parts."""
    d = tmp_path_factory.mktemp("explore")
    still = np.repeat(make_frames(1, 64, 48, seed=5), 24, axis=0)
    clip = write_clip(d / "two.mkv", np.concatenate([make_frames(24, 64, 48, seed=0), still]))
    movie = d / "two.lcv"
    latentcast.encode(clip, parted_model, movie)
    return movie, parted_model, clip


def test_similar_frames_of_a_still_shot_are_its_own_and_a_gap_is_kept(two_shots, capsys):
    movie, model, _clip = two_shots
    assert similar.main([str(movie), "--model", str(model), "--frame", "40", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["neighbours"]
    # the held frame has one code: every neighbour is another frame of the still shot, at 0
    assert len(found) == 8 and all(24 <= n["frame"] < 48 and n["frame"] != 40 for n in found), found
    assert all(n["distance"] == 0 for n in found)
    assert similar.main([str(movie), "--model", str(model), "--frame", "5", "--min-gap", "3", "--k", "4",
                         "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["neighbours"]
    distances = [n["distance"] for n in found]
    assert len(found) == 4 and all(abs(n["frame"] - 5) > 3 for n in found) and distances == sorted(distances)


def test_similar_distances_are_the_latents_own(two_shots):
    movie, model, _clip = two_shots
    with Container(movie) as c:
        z = all_latents(c)
    scale = np.maximum(z.std(0), 1e-3 * z.std(0).mean())
    want = np.sqrt((((z - z[10]) / scale) ** 2).mean(axis=1))
    want[10] = np.inf
    found = latentcast.similar(movie, model, 10, k=5)
    assert [n.frame for n in found.neighbours] == list(np.argsort(want)[:5])
    assert [n.distance for n in found.neighbours] == pytest.approx(np.sort(want)[:5], rel=1e-4)


def test_similar_across_a_store_leaves_out_other_models_and_draws_a_sheet(two_shots, trained_model, clip,
                                                                         tmp_path, capsys):
    movie, model, source = two_shots
    store = Store(tmp_path / "s", create=True)
    twin = store.ingest(str(source), model, title="twin", progress=False)  # the same latent space
    store.ingest(str(clip), trained_model, title="other", progress=False)  # another model's
    sheet = tmp_path / "sheet.png"
    assert similar.main([str(movie), "--model", str(model), "--frame", "10", "--store", str(store.root),
                         "--k", "3", "-o", str(sheet)]) == 0
    out, err = capsys.readouterr()
    assert "left out 1 encoded by another model" in err
    # the twin holds the very same frames: frame 10 of it is at distance 0, first
    assert out.splitlines()[0].split() == ["movie", twin.id, "frame", "10", "distance", "0.000"]
    with Image.open(sheet) as im:
        assert im.width >= 4 * 128  # the frame and its 3 neighbours, side by side


def test_similar_and_inspect_refuse_bad_input_in_one_line(two_shots, trained_model, capsys):
    movie, model, _clip = two_shots
    cases = [
        (similar.main, [str(movie), "--model", str(model), "--frame", "48"], "outside the movie's 48 frames"),
        (similar.main, [str(movie), "--model", str(trained_model), "--frame", "1"], "another model"),
        (similar.main, [str(movie), "--model", str(model), "--frame", "1", "--k", "0"], "--k must be positive"),
        (inspect.main, [str(model), "--movie", str(movie), "--frame", "-1", "-o", "x.png"], "outside the movie's"),
        (inspect.main, [str(model), "--movie", str(movie), "--frame", "1", "--steps", "1", "-o", "x.png"],
         "--steps"),
    ]
    for fn, argv, says in cases:
        assert fn(argv) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err


def test_inspect_ranks_every_channel_by_what_it_changes_and_draws_the_top(two_shots, tmp_path, capsys):
    movie, model, _clip = two_shots
    grid = tmp_path / "grid.png"
    assert inspect.main([str(model), "--movie", str(movie), "--frame", "30", "--rows", "3", "--steps", "5",
                         "-o", str(grid)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    cfg = load_config(model)
    ranking = [(line.rsplit(None, 1)[0], float(line.rsplit(None, 1)[1])) for line in lines]
    assert len(ranking) == cfg.latent_channels
    changes = [c for _, c in ranking]
    assert changes == sorted(changes, reverse=True) and changes[0] > changes[-1]
    # the top channel's change, measured again here: its sweep's ends, decoded with frame 30's decoder
    with Container(movie) as c:
        z = all_latents(c)
        decoders = model_decoders(model, tuple(c.header.parts))
    top = int(ranking[0][0].split()[-1])
    ends = np.concatenate(list(decode_latents(decoders.decoder_at(30), sweep(z[30], channel_directions(z, cfg)[top],
                                                                                 2)))).astype(np.int16)
    decoders.close()
    assert np.abs(ends[1] - ends[0]).mean() == pytest.approx(ranking[0][1], abs=0.01)
    with Image.open(grid) as im:  # 3 rows of 5 tiles (blown up to 128 px across), with captions
        assert im.height >= 3 * 96 and im.width >= 5 * 128


def test_inspect_sweeps_principal_components(two_shots, tmp_path, capsys):
    movie, model, _clip = two_shots
    assert inspect.main([str(model), "--movie", str(movie), "--frame", "3", "--pca", "--rows", "2",
                         "-o", str(tmp_path / "pca.png")]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines and all(line.startswith("PC ") for line in lines)
    # ranked by what they change; numbered by variance: PC 1 holds the largest share
    shares = {int(line.split()[1]): float(line.split("(")[1].split()[0]) for line in lines}
    assert shares[1] == max(shares.values()) > 30 and sum(shares.values()) <= 100.1
    assert sorted(shares) == list(range(1, len(shares) + 1))


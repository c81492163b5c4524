"""latentcast play / list through main(argv): output files and one-line errors."""

import numpy as np
import pytest

from latentcast.codec import video
from latentcast.commands import list as list_cmd
from latentcast.commands import play
from latentcast.server.app import ServerOptions, run_server


@pytest.fixture(scope="module")
def server(store_with_movie):
    store, _ = store_with_movie
    with run_server(store, ServerOptions(tokens=["tok"])) as srv:
        yield srv


def _err_line(capsys, code):
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_play_writes_frames_and_summary(server, offline_frames, tmp_path, capsys):
    out = tmp_path / "o.mkv"
    code = play.main(["Shapes", "--server", server.address, "--token", "tok", "-o", str(out), "--from", "0.5",
                      "--frames", "6", "--cache-dir", str(tmp_path / "c"), "-q"])
    assert code == 0
    err = capsys.readouterr().err
    assert "bitrate" in err and "decode" in err
    assert np.array_equal(np.stack(list(video.read_frames(out))), offline_frames[6:12])


def test_play_realtime_paces_output(server, tmp_path, capsys):
    import time

    t = time.monotonic()
    assert play.main(["Shapes", "--server", server.address, "--token", "tok", "-o", str(tmp_path / "r.y4m"),
                      "--realtime", "--buffer", "0.2", "--cache-dir", str(tmp_path / "c"), "-q"]) == 0
    assert time.monotonic() - t >= 24 / 12 * 0.9  # 24 frames at 12 fps
    assert "stalls" in capsys.readouterr().err


@pytest.mark.parametrize("argv,why", [
    (["Shapes", "--token", "nope"], "invalid bearer token"),
    (["Shapes"], "missing bearer token"),
    (["Nope", "--token", "tok"], "no movie"),
    (["Shapes", "--token", "tok", "--start", "99"], "outside"),
])
def test_play_errors_are_one_line(server, tmp_path, capsys, argv, why, monkeypatch):
    monkeypatch.delenv("LATENTCAST_TOKEN", raising=False)
    out = tmp_path / "x.mkv"
    code = play.main(argv + ["--server", server.address, "-o", str(out), "--cache-dir", str(tmp_path / "c"),
                             "--retry", "1"])
    assert why in _err_line(capsys, code)
    assert not out.exists()


def test_list(server, capsys):
    assert list_cmd.main(["--server", server.address, "--token", "tok"]) == 0
    assert "Shapes" in capsys.readouterr().out


def test_side_information_that_disagrees_with_the_catalog_is_refused(store_with_movie):
    from latentcast.client.wire import movie_quantizer
    from latentcast.codec.format.errors import ModelError
    from latentcast.proto import latentcast_pb2 as pb

    store, rec = store_with_movie
    _header, side = store.movie_header(rec.id)
    honest = pb.Movie(id=rec.id, frames=rec.frames, latent_dim=rec.latent_dim, bits=rec.bits,
                      decoder_sha256=rec.decoder_sha256, header=side)
    assert movie_quantizer(honest).bits == rec.bits
    for lie in (dict(bits=rec.bits + 1), dict(frames=rec.frames + 1), dict(header=side[:-1] + b"\0"),
                dict(header=b""), dict(header=b"", quant_lo=[0.0], quant_hi=[1.0])):
        movie = pb.Movie()
        movie.CopyFrom(honest)
        for key, value in lie.items():
            if isinstance(value, list):
                getattr(movie, key).extend(value)
            else:
                setattr(movie, key, value)
        with pytest.raises(ModelError):
            movie_quantizer(movie)


def test_a_token_is_never_sent_in_the_clear_off_loopback(tmp_path, capsys):
    from latentcast.client.session import Session
    from latentcast.codec.format.errors import UsageError

    with pytest.raises(UsageError, match="in the clear"):
        Session("10.1.2.3:50051", token="tok")
    Session("10.1.2.3:50051", token="tok", insecure=True).close()  # asked for: allowed
    Session("10.1.2.3:50051").close()  # no token, nothing to leak
    code = list_cmd.main(["--server", "10.1.2.3:50051", "--token", "tok"])
    assert "--insecure" in _err_line(capsys, code)


def test_token_file_is_read_and_must_not_be_world_readable(server, tmp_path, capsys):
    import os

    path = tmp_path / "token"
    path.write_text("tok\n")
    os.chmod(path, 0o644)
    code = list_cmd.main(["--server", server.address, "--token-file", str(path)])
    assert "readable by every user" in _err_line(capsys, code)
    os.chmod(path, 0o600)
    assert list_cmd.main(["--server", server.address, "--token-file", str(path)]) == 0
    assert "Shapes" in capsys.readouterr().out


def test_play_without_an_output_feeds_an_installed_player_or_says_how_to_play(server, tmp_path, capsys, monkeypatch):
    argv = ["Shapes", "--server", server.address, "--token", "tok", "--cache-dir", str(tmp_path / "c"), "-q"]
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert "neither ffplay nor mpv" in _err_line(capsys, play.main(argv))
    # A stand-in for ffplay that keeps what it was fed: the plumbing, not the player, is tested.
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "ffplay"
    fake.write_text(f"#!/bin/sh\nexec /bin/cat > {tmp_path / 'fed.mkv'}\n")
    fake.chmod(0o755)
    assert play.main(argv) == 0
    fed = np.stack(list(video.read_frames(tmp_path / "fed.mkv")))
    assert fed.shape[0] == 24 and fed.shape[1:] == (48, 64, 3)

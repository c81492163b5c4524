"""The serving side loads no PyTorch: a server process answers every RPC with the format layer."""

import subprocess
import sys

SERVE_AND_ASK = r"""
import sys
import grpc
from latentcast.proto import latentcast_pb2 as pb, latentcast_pb2_grpc as pb_grpc
from latentcast.server.app import run_server
from latentcast.server.store import Store

with run_server(Store(sys.argv[1])) as srv:
    stub = pb_grpc.LatentcastStub(grpc.insecure_channel(srv.address))
    movies = stub.ListMovies(pb.ListMoviesRequest(), timeout=10).movies
    movie = stub.GetMovie(pb.GetMovieRequest(movie=movies[0].id), timeout=10)
    sent = list(stub.GetDecoder(pb.GetDecoderRequest(sha256=movie.decoder_sha256), timeout=10))
    decoder = sum(len(c.data) + len(c.config_json.encode()) for c in sent)
    frames = sum(c.n_frames for c in stub.StreamLatents(pb.StreamLatentsRequest(movie=movie.id), timeout=10))
heavy = sorted(m for m in ("torch", "torchvision", "matplotlib", "av", "latentcast.codec.nn.model")
               if m in sys.modules)
print(len(movies), decoder, frames, movie.frames, heavy)
"""


def test_a_server_answers_every_rpc_without_importing_torch(store_with_movie):
    store, rec = store_with_movie
    res = subprocess.run([sys.executable, "-c", SERVE_AND_ASK, str(store.root)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    movies, decoder_bytes, frames, total, heavy = res.stdout.split(maxsplit=4)
    assert (int(movies), int(frames), int(total)) == (1, rec.frames, rec.frames)
    wire, config, _ = store.decoder_bytes(rec.decoder_sha256)
    # The file and its config as received; `total` counts the larger of the config and the browser's graph.
    assert int(decoder_bytes) == len(wire) + len(config.encode()) <= rec.decoder_bytes
    assert heavy.strip() == "[]"


def test_importing_the_server_or_the_package_loads_nothing_heavy():
    code = ("import sys, latentcast, latentcast.server.service, latentcast.server.store, latentcast.server.app; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'latentcast.api') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr[-2000:]

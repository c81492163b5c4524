"""The Python API: train, encode, decode and a streaming Client. The CLI's subcommands are thin
layers over these functions; each imports what it needs when it is called."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from latentcast.codec.extras import require_extra, require_torch
from latentcast.codec.format.audio_info import DEFAULT_AUDIO_KBPS
from latentcast.codec.format.container import DEFAULT_CHUNK_SECONDS
from latentcast.codec.format.errors import UsageError

if TYPE_CHECKING:
    from fractions import Fraction

    from latentcast.client.player import PlaybackSummary
    from latentcast.codec.format.container import EncodeResult
    from latentcast.proto.latentcast_pb2 import Movie

PathLike = str | os.PathLike


def train(video: PathLike, model_dir: PathLike, *, resume: bool = False, **options) -> dict:
    """Fit a codec to ``video`` and write it to ``model_dir``; returns the training summary.

    ``options`` are the fields of ``latentcast.codec.train.TrainOptions`` (``minutes``,
    ``seconds_per_second``, ``epochs``, ``size=(w, h)``, ``bits``, ...), with the defaults
    ``latentcast train`` has, except that no progress bar is shown unless ``progress=True``. ``resume`` continues from the
    checkpoint in ``model_dir``.
    """
    require_torch("training")
    require_extra("torchvision", "train", "training")
    from latentcast.codec.train import TrainOptions
    from latentcast.codec.train import train as fit
    from latentcast.codec.train.options import with_cleared

    options = _checked_options(TrainOptions, options, "training")
    return fit(str(video), model_dir, TrainOptions(**with_cleared(TrainOptions, options)), resume=resume)


def _checked_options(cls: type, options: dict, what: str) -> dict:
    """``options`` with no progress bar unless asked; UsageError for a name ``cls`` has no field for."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"unknown {what} option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return {"progress": False, **options}


def encode(video: PathLike, model_dir: PathLike, output: PathLike, *, bits: int | None = None,
           chunk_seconds: float = DEFAULT_CHUNK_SECONDS, max_frames: int | None = None, batch: int = 16,
           parts: bool = True, progress: bool = False,
           audio_kbps: float | str | None = DEFAULT_AUDIO_KBPS, refine_steps: int | None = None) -> "EncodeResult":
    """Encode ``video`` with a trained model into a ``.lcv`` container at ``output`` (written
    atomically). ``bits`` defaults to the width the model was trained for. A model with scene
    parts (``fit_parts``) names them in the container unless ``parts=False``: they are keyed
    to the frames of the video they were fit to. The video's sound is coded to Opus at
    ``audio_kbps``, or kept as it is with ``"copy"`` (None leaves it out). Each frame's codes
    are refined by ``refine_steps`` steps against the decoder a viewer gets (None: the default,
    ``codec.format.quantizer.DEFAULT_REFINE_STEPS``; 0: the encoder's codes as they are)."""
    require_torch("encoding")
    from latentcast.codec.nn.config import load_config
    from latentcast.codec.nn.encode import encode_video
    from latentcast.codec.nn.part_index import model_parts
    from latentcast.codec.nn.weights import load_encoder

    cfg = load_config(model_dir)
    return encode_video(str(video), load_encoder(model_dir), cfg.decoder_sha256, output, bits=bits,
                        chunk_seconds=chunk_seconds, batch=batch, max_frames=max_frames, progress=progress,
                        parts=(lambda n: model_parts(model_dir, cfg.decoder_sha256, n)) if parts else None,
                        audio_kbps=audio_kbps, decoder_dir=model_dir,
                        refine_steps=refine_steps)


def fit_parts(video: PathLike, model_dir: PathLike, **options) -> dict:
    """Fit a decoder part per scene of ``video`` onto the model in ``model_dir`` (trained on that
    video) and write its parts.json; returns it as a dict. ``options`` are the fields of
    ``latentcast.codec.train.scene_parts.PartOptions`` (``seconds_per_second``, ``layers``, ...)."""
    require_torch("fitting scene parts")
    from latentcast.codec.train.scene_parts import PartOptions
    from latentcast.codec.train.scene_parts import fit_parts as fit

    index = fit(str(video), model_dir, PartOptions(**_checked_options(PartOptions, options, "part")))
    return {} if index is None else dataclasses.asdict(index)


def decode(movie: PathLike, model_dir: PathLike, *, start: int = 0, count: int | None = None,
           batch: int = 16, runtime: str = "auto") -> Iterator[np.ndarray]:
    """The frames of a ``.lcv`` container, decoded with the model's decoder, one uint8 (H, W, 3)
    array at a time, from frame ``start`` for ``count`` frames (default: to the end).
    ``runtime``: ``onnx`` (ONNX Runtime, in every install), ``torch`` (with ``latentcast[train]``),
    ``torch-bf16`` (torch in bfloat16: fast where the CPU has AMX or AVX512-BF16, a little off
    fp32's pixels) or ``auto``, the fastest installed path within 0.01 dB of fp32 by the model's
    own measure (codec.runtime.backends.resolve_runtime)."""
    from latentcast.codec.format.container import Container
    from latentcast.codec.runtime.decode import check_decoder_matches, decode_movie
    from latentcast.codec.runtime.scene_decoders import model_decoders

    with Container(movie) as container:
        h = container.header
        decoders = model_decoders(model_dir, h.parts, runtime)
        try:
            check_decoder_matches(h, decoders)
            if not 0 <= start < max(1, h.frames) or (count is not None and count <= 0):
                raise UsageError(f"start {start} and count {count} fall outside the movie's {h.frames} frames")
            for frames in decode_movie(container, decoders, start, count, batch):
                yield from frames
        finally:
            decoders.close()


@dataclasses.dataclass
class SceneList:
    """A movie's shot cuts (first frames of every shot but the first) and its scenes."""

    cuts: list[int]
    scenes: list  # codec.scenes.Chapter: start, end, shots
    fps: "Fraction"
    frames: int

    def to_json(self) -> dict:
        return {"cuts": self.cuts, "scenes": [dataclasses.asdict(c) for c in self.scenes]}


def scenes(source: PathLike, model_dir: PathLike, *, sensitivity: float | None = None,
           min_shot_s: float | None = None, distance: float | None = None) -> SceneList:
    """Shot cuts and scenes of ``source``, from latents alone: for a ``.lcv`` container, those its
    encoder stored (found on the float latents), or with any option given, those its quantized
    latents show (no frame decoded, no torch loaded); for a video, the model's encoder's."""
    from fractions import Fraction

    from latentcast.codec import scenes as sc
    from latentcast.codec.chapters import stored_chapters
    from latentcast.codec.explore.latents import all_latents, open_for_model
    from latentcast.codec.nn.config import load_config

    cfg = load_config(model_dir)
    if str(source).endswith(".lcv"):
        with open_for_model(source, cfg, model_dir) as c:
            h = c.header
            if h.scenes and sensitivity is min_shot_s is distance is None:
                # what the encoder found on the float latents, sharper than the stored codes show
                return SceneList(list(h.cuts), stored_chapters(h.scenes, h.frames), h.fps, h.frames)
            fps = h.fps
            latents = all_latents(c)
    else:
        require_torch("finding scenes in a video")
        from latentcast.codec import video
        from latentcast.codec.nn.encode import latents_of
        from latentcast.codec.nn.weights import load_encoder

        fps = Fraction(video.probe(str(source)).fps)
        latents = latents_of(video.read_batches(str(source), (cfg.width, cfg.height), 32), load_encoder(model_dir))
    if not len(latents):
        raise UsageError(f"{source} holds no frames")
    cuts, chapters = sc.chapters(
        latents, float(fps), sc.DEFAULT_SENSITIVITY if sensitivity is None else sensitivity,
        sc.DEFAULT_MIN_SHOT_S if min_shot_s is None else min_shot_s,
        sc.DEFAULT_SCENE_DISTANCE if distance is None else distance)
    return SceneList(cuts, chapters, Fraction(fps), len(latents))


def similar(movie: PathLike, model_dir: PathLike, frame: int, *, k: int = 8, store: PathLike | None = None,
            min_gap: int = 0) -> "SimilarFrames":
    """The ``k`` frames nearest to ``frame`` in latent space (codec.explore.similar), from the
    container's latents alone; with ``store``, also from its movies encoded by the same model."""
    from latentcast.codec.explore.latents import open_for_model
    from latentcast.codec.explore.similar import nearest
    from latentcast.codec.format.container import Container
    from latentcast.codec.nn.config import load_config

    if k <= 0:
        raise UsageError("--k must be positive")
    cfg = load_config(model_dir)
    with open_for_model(movie, cfg, model_dir) as container:
        others, left_out = {}, 0
        try:
            if store is not None:
                from latentcast.server.store import Store

                st = Store(store)
                for rec in st.list():
                    path = st.movie_path(rec.id)
                    if rec.decoder_sha256 != cfg.decoder_sha256:
                        left_out += 1  # another model's latent space: distances there mean nothing here
                    elif Path(path).resolve() != Path(movie).resolve():
                        others[rec.id] = Container(path)
            return SimilarFrames(frame, nearest(container, frame, k, others, min_gap), len(others), left_out)
        finally:
            for c in others.values():
                c.close()


@dataclasses.dataclass
class SimilarFrames:
    frame: int
    neighbours: list  # codec.explore.similar.Neighbour, nearest first
    movies_searched: int = 0  # other movies of the store, same encoder
    movies_left_out: int = 0  # other movies of the store, another encoder

    def to_json(self) -> dict:
        d = {"neighbours": [n.to_json() for n in self.neighbours]}
        if self.movies_searched or self.movies_left_out:
            d.update(movies_searched=self.movies_searched, movies_left_out=self.movies_left_out)
        return d


def inspect(model_dir: PathLike, movie: PathLike, frame: int, *, pca: bool = False, steps: int = 7, rows: int = 8,
            runtime: str = "auto"):
    """Sweep each latent direction at ``frame`` and rank the directions by how much of the picture
    they change (codec.explore.inspect); returns the Inspection, whose rows are decoded frames."""
    from latentcast.codec.explore.inspect import inspect_frame
    from latentcast.codec.explore.latents import all_latents, open_for_model
    from latentcast.codec.nn.config import load_config
    from latentcast.codec.runtime.scene_decoders import model_decoders

    cfg = load_config(model_dir)
    with open_for_model(movie, cfg, model_dir) as container:
        latents = all_latents(container)
        decoders = model_decoders(model_dir, tuple(container.header.parts), runtime=runtime)
    try:
        return inspect_frame(latents, frame, decoders, cfg, pca=pca, steps=steps, rows=rows)
    finally:
        decoders.close()


class Client:
    """A viewer's connection to a latentcast server: ``address`` is host:port for gRPC, or an
    ``http://`` or ``https://`` URL for its HTTP side (``serve --http``).

    ``token``: the bearer token, if the server asks for one (sent in the clear only to loopback,
    or anywhere with ``insecure``); ``tls_ca``: a CA certificate (PEM bytes or a path) to connect
    with TLS, and ``tls_cert`` and ``tls_key`` this client's certificate for a server that asks
    for one (mutual TLS); ``cache_dir``: where decoders are cached by sha256
    (default: LATENTCAST_CACHE or ~/.cache/latentcast). Use as a context manager.
    """

    def __init__(self, address: str, token: str | None = None, *, tls_ca: bytes | PathLike | None = None,
                 tls_cert: bytes | PathLike | None = None, tls_key: bytes | PathLike | None = None,
                 cache_dir: PathLike | None = None, timeout_s: float = 10.0, retry_s: float = 30.0,
                 insecure: bool = False):
        from latentcast.client.http_session import HttpSession, is_http_url
        from latentcast.client.session import Session

        def pem(x):
            return x if x is None or isinstance(x, bytes) else Path(x).read_bytes()

        extra = {"cache_dir": Path(cache_dir)} if cache_dir is not None else {}
        session = HttpSession if is_http_url(address) else Session
        self.session = session(address, token=token, root_certificates=pem(tls_ca), timeout_s=timeout_s,
                               retry_s=retry_s, insecure=insecure, client_certificate=pem(tls_cert),
                               client_key=pem(tls_key), **extra)

    def list(self) -> list["Movie"]:
        """The movies the server offers (id, title, size, fps, frames, rates, decoder)."""
        return self.session.list_movies()

    def movie(self, movie: str) -> "Movie":
        """One movie by id or exact title, with its quantization ranges."""
        return self.session.get_movie(movie)

    def thumbnails(self, movie: str) -> tuple[str, bytes]:
        """A movie's seek thumbnails: (WebVTT track, JPEG sprite its cues point into), checked."""
        answer = self.session.thumbnails(movie)
        return answer.vtt, answer.sprite

    def play(self, movie: str, output: PathLike, *, start: int = 0, count: int | None = None,
             realtime: bool = False, reference: PathLike | None = None, batch: int = 16, buffer_s: float = 1.0,
             progress: bool = False, on_frames=None, runtime: str = "auto") -> "PlaybackSummary":
        """Stream ``movie`` (id or exact title), decode it here and write ``output`` (.mkv, .mp4,
        .y4m or ``-``); ``on_frames`` is called with each decoded batch (uint8 (n, H, W, 3)).
        ``runtime`` as for ``decode``."""
        from latentcast.client.player import play

        return play(self.session, movie, str(output), start=start, count=count, realtime=realtime,
                    reference=None if reference is None else str(reference), batch=batch, buffer_s=buffer_s,
                    progress=progress, on_frames=on_frames, runtime=runtime)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""latentcast: a learned video codec service.

The Python API (documented in the README)::

    import latentcast
    latentcast.train("movie.mp4", "models/movie", minutes=10, size=(320, 180))
    latentcast.encode("movie.mp4", "models/movie", "movie.lcv")
    for frame in latentcast.decode("movie.lcv", "models/movie"):   # uint8 (H, W, 3)
        ...
    with latentcast.Client("127.0.0.1:50051", token=None) as c:
        c.list(); c.play("movie-id", "out.mkv")

The names load on first use (a module ``__getattr__``), so ``import latentcast.server...``
loads nothing heavy. The user-facing folders are mapped into this package:
``latentcast.codec`` (codec/), ``latentcast.server`` (server/), ``latentcast.client``
(client/), ``latentcast.proto`` (proto/).
"""

__version__ = "0.1.0"

__all__ = ["Client", "decode", "encode", "fit_parts", "inspect", "scenes", "similar", "train"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'latentcast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

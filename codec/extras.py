"""What an optional part of the install needs: a one-line UsageError naming the pip extra."""

from __future__ import annotations

import importlib.util

from .format.errors import UsageError


def require_extra(module: str, extra: str, what: str) -> None:
    """A UsageError naming the pip extra to install when ``module`` is missing."""
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"{what} needs {module}: pip install 'latentcast[{extra}]'")


def require_torch(what: str) -> None:
    """The company side (training, encoding, ingest, bench) runs on torch, which the player
    install leaves out."""
    require_extra("torch", "train", what)

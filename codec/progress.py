"""Progress bars on stderr, shown only to a person at a terminal.

stdout stays free for y4m frames; piped or captured stderr gets no bar noise.
"""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar that is off when ``enabled`` is False or stderr is not a terminal."""
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(disable=None if enabled else True, **kwargs)

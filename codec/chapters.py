"""Scenes as chapter files players read: WebVTT chapters and ffmpeg's ffmetadata, so that
``ffmpeg -i out.mkv -i chapters.txt -map_metadata 1 -c copy with_chapters.mkv`` carries them."""

from __future__ import annotations

from fractions import Fraction

from .scenes import Chapter


def timecode(seconds: float, sep: str = ".") -> str:
    """HH:MM:SS.mmm"""
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def chapter_title(i: int, chapter: Chapter) -> str:
    return f"Scene {i + 1}" + (f" ({chapter.shots} shots)" if chapter.shots > 1 else "")


def webvtt(chapters: list[Chapter], fps: Fraction) -> str:
    """A WebVTT chapters track: one cue per scene."""
    cues = [f"{i + 1}\n{timecode(c.start / fps)} --> {timecode(c.end / fps)}\n{chapter_title(i, c)}\n"
            for i, c in enumerate(chapters)]
    return "WEBVTT\n\n" + "\n".join(cues)


def ffmetadata(chapters: list[Chapter], fps: Fraction) -> str:
    """ffmpeg's metadata file with a [CHAPTER] per scene, in milliseconds."""
    out = [";FFMETADATA1"]
    for i, c in enumerate(chapters):
        out += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={int(round(c.start / fps * 1000))}",
                f"END={int(round(c.end / fps * 1000))}", f"title={chapter_title(i, c)}"]
    return "\n".join(out) + "\n"


def container_chapters(chapters: list[Chapter], fps: Fraction) -> list[dict]:
    """Chapters as PyAV's OutputContainer.set_chapters takes them, in frames of ``fps``."""
    return [{"id": i + 1, "start": c.start, "end": c.end, "time_base": 1 / Fraction(fps),
             "metadata": {"title": chapter_title(i, c)}} for i, c in enumerate(chapters)]


def chapters_within(chapters: list[Chapter], start: int, stop: int) -> list[Chapter]:
    """The chapters of frames [start, stop), cut to that span and counted from ``start``."""
    return [Chapter(max(c.start, start) - start, min(c.end, stop) - start, c.shots)
            for c in chapters if c.end > start and c.start < stop]


def stored_chapters(scenes: tuple[tuple[int, int], ...], frames: int) -> list[Chapter]:
    """A container header's scenes ((first frame, shots), as MovieHeader keeps them) as Chapters."""
    ends = [start for start, _ in scenes[1:]] + [frames]
    return [Chapter(start, end, shots) for (start, shots), end in zip(scenes, ends)]

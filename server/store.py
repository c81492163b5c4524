"""The movie store: a SQLite catalog (WAL mode) and the files it points at.

    STORE/
      catalog.sqlite                 movies and decoders (one row per sha256)
      movies/<id>.lcv                one container per movie
      decoders/<sha256>.safetensors      shared by every movie that uses it
      decoders/<sha256>.safetensors.zst  the same, zstd-coded: what GetDecoder sends
      decoders/<sha256>.json             its config as a viewer receives it (CodecConfig.viewer_json)

Files are written atomically before the catalog row that makes them visible is committed,
so a killed ingest leaves at most orphan files (never a half movie), and a re-run succeeds.
Each call opens its own connection, so the server sees movies ingested while it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from latentcast.codec.chapters import stored_chapters
from latentcast.codec.extras import require_torch
from latentcast.codec.format.atomic import write_bytes_atomic, write_text_atomic
from latentcast.codec.format.audio_info import DEFAULT_AUDIO_KBPS
from latentcast.codec.format.container import DEFAULT_CHUNK_SECONDS, Container, MovieHeader
from latentcast.codec.format.decoder_file import compress_decoder, decompress_decoder, sha256_bytes
from latentcast.codec.format.errors import CorruptContainer, LatentcastError, ModelError, UsageError
from latentcast.codec.format.rates import kbps
from latentcast.codec.nn.config import DECODER, load_config, read_model_file
from latentcast.codec.nn.part_index import model_parts, part_config, part_shas, read_part

log = logging.getLogger(__name__)

ID_RE = re.compile(r"[0-9a-f]{12}")
SHA_RE = re.compile(r"[0-9a-f]{64}")
MAX_TITLE = 512

SCHEMA = """
CREATE TABLE IF NOT EXISTS decoders (
    sha256 TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,      -- as sent (zstd-coded)
    raw_bytes INTEGER NOT NULL,  -- the safetensors file
    config_bytes INTEGER NOT NULL DEFAULT 0  -- what describes it to a viewer (codec.runtime.download_size)
);
CREATE TABLE IF NOT EXISTS movies (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    decoder_sha256 TEXT NOT NULL REFERENCES decoders(sha256),
    width INTEGER NOT NULL, height INTEGER NOT NULL,
    fps_num INTEGER NOT NULL, fps_den INTEGER NOT NULL,
    frames INTEGER NOT NULL, latent_dim INTEGER NOT NULL, bits INTEGER NOT NULL,
    chunk_frames INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL, chunk_bytes INTEGER NOT NULL,   -- chunk records + payloads
    created REAL NOT NULL,
    side_bytes INTEGER NOT NULL DEFAULT 0,  -- the container header GetMovie sends (migrate_side_bytes)
    part_bytes INTEGER NOT NULL DEFAULT 0,  -- its scene parts as sent (zstd), with their configs, all together
    audio_bytes INTEGER NOT NULL DEFAULT 0  -- its sound's chunks (0: silent), apart from the picture
);
CREATE INDEX IF NOT EXISTS movies_title ON movies(title);
-- The decoder parts a movie's scenes use (codec.nn.parts); each is a row in decoders too, so
-- GetDecoder serves it, and it goes when no movie uses it.
CREATE TABLE IF NOT EXISTS movie_parts (
    movie_id TEXT NOT NULL REFERENCES movies(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES decoders(sha256),
    PRIMARY KEY (movie_id, start)
);
CREATE INDEX IF NOT EXISTS movie_parts_sha ON movie_parts(sha256);
-- Seek thumbnails (codec.explore.thumbnails): the sprite is thumbs/<id>.jpg, checked against
-- its sha256; the WebVTT track that points into it is small enough to live here.
CREATE TABLE IF NOT EXISTS thumbnails (
    movie_id TEXT PRIMARY KEY REFERENCES movies(id) ON DELETE CASCADE,
    sprite_sha256 TEXT NOT NULL,
    sprite_bytes INTEGER NOT NULL,
    vtt TEXT NOT NULL,
    tiles INTEGER NOT NULL
);
"""


def scenes_json(header: MovieHeader) -> str:
    """The catalog's scenes column: [[first frame, end frame, shots], ...] from a header."""
    return json.dumps([[c.start, c.end, c.shots] for c in stored_chapters(header.scenes, header.frames)]
                      if header.scenes else [])


@dataclass(frozen=True)
class StoredThumbnails:
    vtt: str
    sprite: bytes  # JPEG, checked against sprite_sha256
    sprite_sha256: str
    tiles: int


class NotFound(LatentcastError):
    """No movie or decoder by that name."""


class StoreError(LatentcastError):
    """A store that is missing or unusable."""


@dataclass(frozen=True)
class MovieRecord:
    id: str
    title: str
    decoder_sha256: str
    width: int
    height: int
    fps_num: int
    fps_den: int
    frames: int
    latent_dim: int
    bits: int
    chunk_frames: int
    stored_bytes: int
    chunk_bytes: int
    created: float
    side_bytes: int = 0
    part_bytes: int = 0
    audio_bytes: int = 0
    # The scenes as JSON [[first frame, end frame, shots], ...] (the container's header has them too).
    scenes: str = "[]"
    decoder_bytes: int = 0  # the base as sent, with what describes it to a viewer
    thumbnail_bytes: int = 0  # the seek thumbnails (sprite and track), counted apart from every rate

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def duration(self) -> float:
        return self.frames / float(self.fps)

    @property
    def streaming_bytes(self) -> int:
        """What a viewer receives for the picture, the decoder aside: side information and chunks."""
        return self.side_bytes + self.chunk_bytes

    @property
    def streaming_kbps(self) -> float:
        return kbps(self.streaming_bytes, self.frames, float(self.fps))

    @property
    def audio_kbps(self) -> float:
        """The sound's rate, counted apart: the picture's figures compare with video codecs'."""
        return kbps(self.audio_bytes, self.frames, float(self.fps))

    @property
    def total_kbps(self) -> float:
        """The streaming bytes and the decoder download (base and scene parts), over the movie's length."""
        return kbps(self.streaming_bytes + self.decoder_bytes + self.part_bytes, self.frames, float(self.fps))


class Store:
    """A store directory. ``create=True`` makes it if missing; otherwise it must exist."""

    def __init__(self, root: str | os.PathLike, create: bool = False, busy_timeout_s: float = 10.0):
        self.root = Path(root)
        self.busy_timeout_s = busy_timeout_s
        if not (self.root / "catalog.sqlite").exists():
            if not create:
                raise StoreError(f"{self.root}: not a latentcast store (no catalog.sqlite)")
            for sub in ("movies", "decoders", "thumbs"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
        self._migrate_side_bytes()
        self._migrate_config_bytes()

    def _migrate_side_bytes(self) -> None:
        """Catalogs from before side_bytes existed: add the column, and fill it in from each
        movie's container so that no rate leaves the side information out. Catalogs from before
        scene parts get part_bytes as 0, which is what their movies use."""
        with self._db() as db:
            columns = {r["name"] for r in db.execute("PRAGMA table_info(movies)")}
            if {"side_bytes", "part_bytes", "audio_bytes", "scenes"} <= columns:
                return  # the usual case: nothing to write, so a read-only store opens too
            db.execute("BEGIN IMMEDIATE")
            try:
                columns = {r["name"] for r in db.execute("PRAGMA table_info(movies)")}
                if "part_bytes" not in columns:
                    db.execute("ALTER TABLE movies ADD COLUMN part_bytes INTEGER NOT NULL DEFAULT 0")
                if "audio_bytes" not in columns:  # catalogs from before sound: every movie in them is silent
                    db.execute("ALTER TABLE movies ADD COLUMN audio_bytes INTEGER NOT NULL DEFAULT 0")
                # Columns filled in from each movie's container (checked still missing once the
                # write lock is held): every container is read once for all of them.
                from_headers = {"side_bytes": ("INTEGER NOT NULL DEFAULT 0", lambda c: c.header_bytes),
                                "scenes": ("TEXT NOT NULL DEFAULT '[]'", lambda c: scenes_json(c.header))}
                missing = [name for name in from_headers if name not in columns]
                for name in missing:
                    db.execute(f"ALTER TABLE movies ADD COLUMN {name} {from_headers[name][0]}")
                for row in db.execute("SELECT id FROM movies").fetchall() if missing else ():
                    try:
                        with Container(self.movie_path(row["id"])) as c:
                            values = [from_headers[name][1](c) for name in missing]
                    except CorruptContainer:
                        continue  # `store check` reports it; its rate stays without the header
                    db.execute(f"UPDATE movies SET {', '.join(f'{n} = ?' for n in missing)} WHERE id = ?",
                               (*values, row["id"]))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _migrate_config_bytes(self) -> None:
        """Catalogs from before each decoder's config was counted: add config_bytes, fill it in
        from the stored files, and add the parts' to each movie's part_bytes, so that every total
        counts what a viewer receives. A decoder whose files are unreadable keeps 0 (`store check`
        reports it)."""
        with self._db() as db:
            if "config_bytes" in {r["name"] for r in db.execute("PRAGMA table_info(decoders)")}:
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                if "config_bytes" not in {r["name"] for r in db.execute("PRAGMA table_info(decoders)")}:
                    db.execute("ALTER TABLE decoders ADD COLUMN config_bytes INTEGER NOT NULL DEFAULT 0")
                    for (sha,) in db.execute("SELECT sha256 FROM decoders").fetchall():
                        try:
                            n = self._config_bytes(sha)
                        except (OSError, ModelError):
                            continue
                        db.execute("UPDATE decoders SET config_bytes = ? WHERE sha256 = ?", (n, sha))
                    db.execute("UPDATE movies SET part_bytes = part_bytes + (SELECT COALESCE(SUM(d.config_bytes), 0) "
                               "FROM decoders d WHERE d.sha256 IN (SELECT DISTINCT p.sha256 FROM movie_parts p "
                               "WHERE p.movie_id = movies.id AND p.sha256 != movies.decoder_sha256))")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _config_bytes(self, sha: str, data: bytes | None = None) -> int:
        """What describes a stored decoder or part to a viewer, from its stored config and its
        file (``data``, when the caller holds it already). Imported here, as the gateway does,
        so that a server's start-up does not load the ONNX graph builder."""
        from latentcast.codec.runtime.download_size import description_bytes

        if data is None:
            data = self.decoder_path(sha).read_bytes()
        return description_bytes(self.decoder_config_path(sha).read_text(), data, sha)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.root / "catalog.sqlite", timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"{self.root}: cannot open the catalog ({e})") from None
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.OperationalError as e:
            raise StoreError(f"catalog busy or unavailable ({e})") from None
        finally:
            db.close()

    # -- paths: only ever built from validated ids, never from user text -----------------------

    def movie_path(self, movie_id: str) -> Path:
        if not ID_RE.fullmatch(movie_id):
            raise NotFound(f"no movie {movie_id!r}")
        return self.root / "movies" / f"{movie_id}.lcv"

    def thumbnail_path(self, movie_id: str) -> Path:
        if not ID_RE.fullmatch(movie_id):
            raise NotFound(f"no movie {movie_id!r}")
        return self.root / "thumbs" / f"{movie_id}.jpg"

    def decoder_path(self, sha256: str) -> Path:
        if not SHA_RE.fullmatch(sha256):
            raise NotFound(f"no decoder {sha256!r}")
        return self.root / "decoders" / f"{sha256}.safetensors"

    def decoder_config_path(self, sha256: str) -> Path:
        return self.decoder_path(sha256).with_suffix(".json")

    def decoder_wire_path(self, sha256: str) -> Path:
        return self.decoder_path(sha256).with_suffix(".safetensors.zst")

    def decoder_files(self, sha256: str) -> list[Path]:
        return [self.decoder_path(sha256), self.decoder_wire_path(sha256), self.decoder_config_path(sha256)]

    # -- queries -------------------------------------------------------------------------------

    _SELECT = ("SELECT m.*, d.bytes + d.config_bytes AS decoder_bytes, COALESCE(t.sprite_bytes + length(CAST(t.vtt AS BLOB)), 0) "
               "AS thumbnail_bytes FROM movies m JOIN decoders d ON d.sha256 = m.decoder_sha256 "
               "LEFT JOIN thumbnails t ON t.movie_id = m.id")

    def list(self, after: tuple[float, str] | None = None, limit: int | None = None) -> list[MovieRecord]:
        """Movies oldest first; with ``after`` (a movie's (created, id)) only those after it, and
        at most ``limit`` of them: pages that stay right while movies are added."""
        where, args = "", []
        if after is not None:
            where, args = " WHERE (m.created, m.id) > (?, ?)", [after[0], after[1]]
        page = f" LIMIT {int(limit)}" if limit is not None else ""
        with self._db() as db:
            rows = db.execute(self._SELECT + where + " ORDER BY m.created, m.id" + page, args).fetchall()
        return [MovieRecord(**dict(r)) for r in rows]

    def get(self, movie: str) -> MovieRecord:
        """A movie by id, else by exact title (the most recent, if several share it)."""
        if not movie or len(movie) > MAX_TITLE:
            raise NotFound(f"no movie {movie[:40]!r}")
        with self._db() as db:
            row = db.execute(self._SELECT + " WHERE m.id = ?", (movie,)).fetchone()
            if row is None:
                row = db.execute(self._SELECT + " WHERE m.title = ? ORDER BY m.created DESC LIMIT 1",
                                 (movie,)).fetchone()
        if row is None:
            raise NotFound(f"no movie {movie!r} in the catalog")
        return MovieRecord(**dict(row))

    def decoder_bytes(self, sha256: str) -> tuple[bytes, str, int]:
        """The decoder as sent (zstd-coded safetensors), its config JSON, and its decoded size."""
        with self._db() as db:
            row = db.execute("SELECT raw_bytes FROM decoders WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            raise NotFound(f"no decoder {sha256[:64]!r}")
        return (self.decoder_wire_path(sha256).read_bytes(), self.decoder_config_path(sha256).read_text(),
                row["raw_bytes"])

    # -- changes -------------------------------------------------------------------------------

    def ingest(self, video: str, model_dir: str | os.PathLike, title: str | None = None, bits: int | None = None,
               chunk_seconds: float = DEFAULT_CHUNK_SECONDS, progress: bool = True,
               audio_kbps: float | str | None = DEFAULT_AUDIO_KBPS, refine_steps: int | None = None) -> MovieRecord:
        """Encode ``video`` with the model's encoder and register it; returns the new movie.
        ``bits`` defaults to the width the model was trained for; its sound is coded to Opus at
        ``audio_kbps``, or kept as it is with ``"copy"`` (None: left out). ``refine_steps`` as
        ``latentcast.encode`` takes it (None: the default)."""
        title = title if title is not None else Path(video).stem
        if not title or len(title) > MAX_TITLE:
            raise UsageError(f"a title must be 1..{MAX_TITLE} characters")
        cfg = load_config(model_dir)
        decoder = read_model_file(Path(model_dir) / DECODER)
        if sha256_bytes(decoder) != cfg.decoder_sha256:
            raise ModelError(f"{Path(model_dir) / DECODER}: sha256 mismatch with config.json")
        # The encoder, and torch with it, loads only where a movie is ingested: serving never needs it.
        require_torch("ingest")
        from latentcast.codec.nn.encode import encode_video
        from latentcast.codec.nn.weights import load_encoder

        encoder = load_encoder(model_dir)
        movie_id = secrets.token_hex(6)
        path = self.movie_path(movie_id)
        try:
            result = encode_video(video, encoder, cfg.decoder_sha256, path, bits=bits, chunk_seconds=chunk_seconds,
                                  progress=progress, parts=lambda n: model_parts(model_dir, cfg.decoder_sha256, n),
                                  audio_kbps=audio_kbps, decoder_dir=model_dir,
                                  refine_steps=refine_steps)
            sha = cfg.decoder_sha256
            files = [(sha, decoder, cfg.viewer_json())]
            with Container(path) as c:
                h, side = c.header, c.header_bytes
                thumbs = _thumbnails(c, model_dir)
            sprite_sha = sha256_bytes(thumbs.sprite)
            self.thumbnail_path(movie_id).parent.mkdir(exist_ok=True)  # a store from before thumbnails
            write_bytes_atomic(self.thumbnail_path(movie_id), thumbs.sprite)
            # A part's "config" names its base: GetDecoder sends it with the part, as it sends a base's.
            files += [(p, read_part(model_dir, p), part_config(sha)) for p in part_shas(h.parts, sha)]
            sizes = {s: self._put_decoder_files(s, data, config) for s, data, config in files}
            part_bytes = sum(sizes[p][0] + sizes[p][2] for p in part_shas(h.parts, sha))
            with self._db() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany("INSERT OR IGNORE INTO decoders (sha256, bytes, raw_bytes, config_bytes) "
                                   "VALUES (?, ?, ?, ?)", [(s, *size) for s, size in sizes.items()])
                    db.execute(
                        "INSERT INTO movies (id, title, decoder_sha256, width, height, fps_num, fps_den, frames, "
                        "latent_dim, bits, chunk_frames, stored_bytes, chunk_bytes, created, side_bytes, part_bytes, "
                        "audio_bytes, scenes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (movie_id, title, sha, h.width, h.height, h.fps.numerator, h.fps.denominator, h.frames,
                         h.latent_dim, h.bits, h.chunk_frames, result.bytes, result.streaming_bytes - side,
                         time.time(), side, part_bytes, result.audio_bytes, scenes_json(h)))
                    db.execute("INSERT INTO thumbnails (movie_id, sprite_sha256, sprite_bytes, vtt, tiles) "
                               "VALUES (?, ?, ?, ?, ?)",
                               (movie_id, sprite_sha, len(thumbs.sprite), thumbs.vtt, len(thumbs.frames)))
                    db.executemany("INSERT INTO movie_parts (movie_id, start, sha256) VALUES (?, ?, ?)",
                                   [(movie_id, start, p) for start, p in h.parts])
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except BaseException:
            path.unlink(missing_ok=True)
            self.thumbnail_path(movie_id).unlink(missing_ok=True)
            raise
        return self.get(movie_id)

    def thumbnails(self, movie_id: str) -> StoredThumbnails:
        """A movie's seek thumbnails; NotFound for a movie stored before them, CorruptContainer
        when the sprite fails its checksum."""
        with self._db() as db:
            row = db.execute("SELECT * FROM thumbnails WHERE movie_id = ?", (movie_id,)).fetchone()
        if row is None:
            raise NotFound(f"movie {movie_id} has no thumbnails (ingested before them)")
        try:
            sprite = self.thumbnail_path(movie_id).read_bytes()
        except FileNotFoundError:
            raise CorruptContainer(f"movie {movie_id}: its thumbnail sprite is missing") from None
        if sha256_bytes(sprite) != row["sprite_sha256"]:
            raise CorruptContainer(f"movie {movie_id}: its thumbnail sprite fails its checksum")
        return StoredThumbnails(row["vtt"], sprite, row["sprite_sha256"], row["tiles"])

    def _put_decoder_files(self, sha: str, data: bytes, config: str) -> tuple[int, int, int]:
        """Write a decoder's (or part's) file, zstd copy and config unless sound copies are there;
        returns (bytes as sent, bytes of the file, bytes that describe it to a viewer)."""
        wire = compress_decoder(data)
        dpath = self.decoder_path(sha)
        if not dpath.exists() or sha256_bytes(dpath.read_bytes()) != sha:
            write_bytes_atomic(dpath, data)
        if not self.decoder_config_path(sha).exists():
            write_text_atomic(self.decoder_config_path(sha), config)
        wpath = self.decoder_wire_path(sha)
        if not wpath.exists() or wpath.read_bytes() != wire:
            write_bytes_atomic(wpath, wire)
        return len(wire), len(data), self._config_bytes(sha, data)

    def remove(self, movie_id: str) -> tuple[MovieRecord, bool]:
        """Delete a movie, and its decoder when no other movie uses it; returns (movie, decoder_removed)."""
        rec = self.get(movie_id)
        if rec.id != movie_id:
            raise NotFound(f"no movie with id {movie_id!r} (rm takes an id, not a title)")
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                shas = [rec.decoder_sha256] + [r[0] for r in db.execute(
                    "SELECT DISTINCT sha256 FROM movie_parts WHERE movie_id = ?", (movie_id,))]
                db.execute("DELETE FROM movie_parts WHERE movie_id = ?", (movie_id,))
                db.execute("DELETE FROM movies WHERE id = ?", (movie_id,))
                unused = [sha for sha in dict.fromkeys(shas) if not _in_use(db, sha)]
                db.executemany("DELETE FROM decoders WHERE sha256 = ?", [(sha,) for sha in unused])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        # Files go after the commit: a crash here leaves orphans, never a row without its file.
        self.movie_path(movie_id).unlink(missing_ok=True)
        self.thumbnail_path(movie_id).unlink(missing_ok=True)
        for sha in unused:
            for f in self.decoder_files(sha):
                f.unlink(missing_ok=True)
        return rec, rec.decoder_sha256 in unused

    def movie_header(self, movie_id: str) -> tuple[MovieHeader, bytes]:
        """The stored movie's container header, parsed and as stored (its side information)."""
        with Container(self.movie_path(movie_id)) as c:
            return c.header, c.side_information()


def _thumbnails(container: Container, model_dir):
    """Seek thumbnails for a movie just encoded, decoded with the model's own decoders."""
    from latentcast.codec.explore.thumbnails import make_thumbnails
    from latentcast.codec.runtime.scene_decoders import model_decoders

    decoders = model_decoders(model_dir, tuple(container.header.parts))
    try:
        return make_thumbnails(container, decoders)
    finally:
        decoders.close()


def _in_use(db: sqlite3.Connection, sha: str) -> bool:
    """Whether any movie decodes with ``sha``, as its base or as one of its scene parts."""
    return db.execute("SELECT EXISTS (SELECT 1 FROM movies WHERE decoder_sha256 = ?) OR "
                      "EXISTS (SELECT 1 FROM movie_parts WHERE sha256 = ?)", (sha, sha)).fetchone()[0] == 1


# -- consistency check and repair ---------------------------------------------------------------

@dataclass
class CheckReport:
    movies_ok: int = 0
    damaged: list[str] = field(default_factory=list)  # registered movies or decoders that fail a check
    orphans: list[str] = field(default_factory=list)  # files or rows nothing refers to
    removed: list[str] = field(default_factory=list)  # orphans that --repair deleted
    movie_bytes: int = 0  # the registered movies' containers
    decoder_bytes: int = 0  # their decoders and parts, as sent
    thumbnail_bytes: int = 0  # their seek thumbnails, counted apart: no rate includes them

    @property
    def clean(self) -> bool:
        return not self.damaged and len(self.removed) == len(self.orphans)


def _verify_movie(path: Path, rec: MovieRecord) -> list[str]:
    """Every problem with one registered movie's container (empty when it is sound)."""
    try:
        movie = Container(path)
    except CorruptContainer as e:
        return [f"movie {rec.id}: {e}"]
    problems = []
    with movie:
        h = movie.header
        if (h.width, h.height, h.frames, h.decoder_sha256) != (rec.width, rec.height, rec.frames,
                                                                rec.decoder_sha256):
            problems.append(f"movie {rec.id}: container header disagrees with the catalog")
        if movie.header_bytes != rec.side_bytes:
            problems.append(f"movie {rec.id}: the catalog counts {rec.side_bytes} bytes of side information, "
                            f"the container holds {movie.header_bytes}")
        for i in range(len(movie.chunks)):
            try:
                movie.read_chunk(i)
            except CorruptContainer as e:
                problems.append(f"movie {rec.id}: {e}")
    return problems


def check_store(store: "Store", repair: bool = False, min_orphan_age_s: float = 600.0) -> CheckReport:
    """Verify every catalog row, file and checksum; list orphans; with ``repair`` delete orphans
    older than ``min_orphan_age_s`` (younger ones may belong to an ingest still running).
    A registered movie is never deleted, damaged or not."""
    report = CheckReport()
    movies = store.list()
    with store._db() as db:
        decoder_rows = {r["sha256"]: r["raw_bytes"] for r in db.execute("SELECT sha256, raw_bytes FROM decoders")}
        report.decoder_bytes = db.execute("SELECT COALESCE(SUM(bytes + config_bytes), 0) FROM decoders").fetchone()[0]
    report.movie_bytes = sum(m.stored_bytes for m in movies)
    report.thumbnail_bytes = sum(m.thumbnail_bytes for m in movies)
    for rec in movies:
        path = store.movie_path(rec.id)
        if not path.exists():
            report.damaged.append(f"movie {rec.id}: its container {path.name} is missing")
            continue
        problems = _verify_movie(path, rec)
        if rec.thumbnail_bytes:
            try:
                store.thumbnails(rec.id)
            except CorruptContainer as e:
                problems.append(str(e))
        report.damaged += problems
        report.movies_ok += not problems
    with store._db() as db:
        used = {m.decoder_sha256 for m in movies} | {r[0] for r in db.execute("SELECT sha256 FROM movie_parts")}
    for sha in decoder_rows:
        dpath = store.decoder_path(sha)
        if not dpath.exists():
            report.damaged.append(f"decoder {sha[:12]}…: file missing")
        elif sha256_bytes(dpath.read_bytes()) != sha:
            report.damaged.append(f"decoder {sha[:12]}…: sha256 mismatch")
        if not store.decoder_config_path(sha).exists():
            report.damaged.append(f"decoder {sha[:12]}…: config missing")
        wpath = store.decoder_wire_path(sha)
        try:
            if sha256_bytes(decompress_decoder(wpath.read_bytes(), decoder_rows[sha])) != sha:
                report.damaged.append(f"decoder {sha[:12]}…: the zstd copy does not decode to the decoder")
        except FileNotFoundError:
            report.damaged.append(f"decoder {sha[:12]}…: zstd copy missing")
        except ModelError as e:
            report.damaged.append(f"decoder {sha[:12]}…: zstd copy damaged ({e})")
    now = time.time()
    known_files = {store.movie_path(m.id).name for m in movies}
    known_files |= {store.thumbnail_path(m.id).name for m in movies if m.thumbnail_bytes}
    known_files |= {f.name for sha in decoder_rows for f in store.decoder_files(sha)}
    for sub in ("movies", "decoders", "thumbs"):
        if not (store.root / sub).is_dir():
            continue  # a store from before thumbnails
        for f in sorted((store.root / sub).iterdir()):
            if f.name in known_files:
                continue
            report.orphans.append(f"{sub}/{f.name}")
            if repair and now - f.stat().st_mtime >= min_orphan_age_s:
                f.unlink(missing_ok=True)
                report.removed.append(f"{sub}/{f.name}")
    for sha in sorted(set(decoder_rows) - used):
        report.orphans.append(f"decoder row {sha[:12]}… (no movie uses it)")
        if repair:
            with store._db() as db:
                db.execute("BEGIN IMMEDIATE")
                if not _in_use(db, sha):
                    db.execute("DELETE FROM decoders WHERE sha256 = ?", (sha,))
                db.execute("COMMIT")
            for f in store.decoder_files(sha):
                f.unlink(missing_ok=True)
            report.removed.append(f"decoder row {sha[:12]}… (no movie uses it)")
    return report

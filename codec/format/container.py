"""The ``.lcv`` container: one file per encoded movie.

Layout (all integers little-endian)::

    0      magic      8 bytes   b"\\x89LCV\\r\\n\\x1a\\n"   (catches text-mode mangling, like PNG)
    8      version    u16       3 (versions 1 and 2 are read too, see below)
    10     flags      u16       0
    12     json_len   u32
    16     header     json_len bytes of UTF-8 JSON (sizes, fps, bits, chunking, decoder sha256)
    ..     ranges     u32 length, then a zstd frame of 2 * latent_dim float16: lo[], then hi[]
    ..     checksum   u64       xxh3-64 of bytes [0, here)
    then, per chunk:
           record     u32 start_frame, u32 n_frames, u32 payload_len, u64 xxh3-64
           payload    payload_len bytes (see chunks.encode_chunk)
    index  b"LCVI", u32 n_chunks, n_chunks * (u64 offset, u32 start, u32 n, u32 len, u64 xxh3),
           u64 xxh3-64 of the index so far
    trailer u64 index_offset, u64 index_len, b"LCV-END\\x00"   (the last 24 bytes)

The header up to its checksum is the movie's side information: a viewer needs it before the
first frame, GetMovie sends it byte for byte, and every streaming rate counts it. Version 3 keeps
it small: the quantizer's ranges are float16 (the writer rounds them outward, and quantizes with
the rounded ranges, so encoder and decoder agree exactly) in a zstd frame, where versions 1 and 2
spent 8 bytes a dimension on float32. Version 1 also kept one latent symbol per payload byte.

A chunk's checksum covers its (start, n_frames, payload_len) and payload, so a chunk sent over
the wire can be verified by the receiver with the same function. Every defect raises
``CorruptContainer`` naming the byte offset; nothing is ever guessed.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import xxhash

from .atomic import atomic_write
from .audio_info import AudioInfo
from .chunks import decode_chunk, encode_chunk, frames_in
from .compress import compressor, decompress_exact
from .errors import CorruptContainer, UsageError
from .quantizer import Quantizer, check_bits

MAGIC = b"\x89LCV\r\n\x1a\n"
END_MAGIC = b"LCV-END\x00"
INDEX_MAGIC = b"LCVI"
VERSION = 3  # float16 ranges in a zstd frame; 2: packed payload symbols (chunks.encode_chunk)
AUDIO_VERSION = 4  # a movie with sound: audio chunks after the latent chunks (a movie without keeps 3)
READS = (1, 2, 3, 4)

_PREFIX = struct.Struct("<8sHHI")  # magic, version, flags, json_len
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_RECORD = struct.Struct("<IIIQ")  # start, n_frames, payload_len, checksum
_INDEX_HEAD = struct.Struct("<4sI")
_INDEX_ENTRY = struct.Struct("<QIIIQ")  # offset, start, n_frames, payload_len, checksum
_TRAILER = struct.Struct("<QQ8s")

MAX_JSON = 1 << 20
MAX_LATENT_DIM = 1 << 16
MAX_CHUNK_BYTES = 1 << 28


def chunk_checksum(start: int, n_frames: int, payload: bytes) -> int:
    """xxh3-64 over a chunk's frame range, length and payload (also used on the wire)."""
    h = xxhash.xxh3_64()
    h.update(struct.pack("<III", start, n_frames, len(payload)))
    h.update(payload)
    return h.intdigest()


@dataclass(frozen=True)
class MovieHeader:
    """What a decoder needs to know about an encoded movie."""

    width: int
    height: int
    fps: Fraction
    frames: int
    latent_dim: int
    bits: int
    chunk_frames: int
    decoder_sha256: str
    lo: np.ndarray
    hi: np.ndarray
    version: int = VERSION
    # The decoder parts of a movie decoded as a base plus a part per scene (codec.nn.parts):
    # (first frame, part sha256) in frame order, each covering frames up to the next's start.
    # Empty: the base decoder alone decodes every frame, as in every movie before parts.
    parts: tuple[tuple[int, str], ...] = ()
    # Shot cuts and scenes found by the encoder on its float latents (codec.scenes), sharper than
    # anything the quantized ones show: the first frame of each shot but the first, and each
    # scene's (first frame, shots). Empty in movies encoded before them.
    cuts: tuple[int, ...] = ()
    scenes: tuple[tuple[int, int], ...] = ()
    # The sound (version 4): Opus, one self-contained audio chunk per latent chunk (codec.audio).
    audio: AudioInfo | None = None

    def part_at(self, frame: int) -> int | None:
        """Index into ``parts`` of the part that decodes ``frame``, or None without parts."""
        return part_at(self.parts, frame)

    @property
    def packed(self) -> bool:
        """Payloads pack symbols of 4 bits or fewer several to a byte (from version 2)."""
        return self.version >= 2

    @property
    def quantizer(self) -> Quantizer:
        return Quantizer(self.bits, self.lo, self.hi)

    @property
    def duration(self) -> float:
        return self.frames / float(self.fps)

    def _json(self) -> bytes:
        meta = {
            "width": self.width, "height": self.height,
            "fps": [self.fps.numerator, self.fps.denominator],
            "frames": self.frames, "latent_dim": self.latent_dim, "bits": self.bits,
            "chunk_frames": self.chunk_frames, "decoder_sha256": self.decoder_sha256,
        }
        if self.parts:  # left out otherwise, so a movie without parts keeps its bytes
            meta["parts"] = [[start, sha] for start, sha in self.parts]
        if self.scenes:
            meta["cuts"] = list(self.cuts)
            meta["scenes"] = [[start, shots] for start, shots in self.scenes]
        if self.audio is not None:
            meta["audio"] = self.audio.to_json()
        return json.dumps(meta, sort_keys=True).encode()

    def to_bytes(self) -> bytes:
        """The header as stored and as GetMovie sends it: the movie's side information."""
        body = self._json()
        ranges = np.concatenate([self.lo, self.hi]).astype(np.float32)
        if self.version >= 3:
            half = ranges.astype("<f2")
            if not np.array_equal(half.astype(np.float32), ranges):
                raise ValueError("version 3 stores float16 ranges: round them first (quantizer.half_ranges)")
            coded = compressor().compress(half.tobytes())
            ranges_bytes = _U32.pack(len(coded)) + coded
        else:
            ranges_bytes = ranges.astype("<f4").tobytes()
        version = AUDIO_VERSION if self.audio is not None else self.version
        head = _PREFIX.pack(MAGIC, version, 0, len(body)) + body + ranges_bytes
        return head + _U64.pack(xxhash.xxh3_64_intdigest(head))

    @classmethod
    def from_bytes(cls, data: bytes) -> "MovieHeader":
        """Parse side information received on its own (GetMovie); CorruptContainer if damaged."""
        header, end = _parse_header(io.BytesIO(data), len(data))
        if end != len(data):
            raise CorruptContainer(f"side information runs {len(data) - end} bytes past its checksum", end)
        return header


@dataclass(frozen=True)
class ChunkEntry:
    offset: int  # of the record, in the file
    start: int
    n_frames: int
    length: int  # of the payload
    checksum: int

    @property
    def end(self) -> int:
        return self.start + self.n_frames

    @property
    def payload_offset(self) -> int:
        return self.offset + _RECORD.size

    @property
    def stored_bytes(self) -> int:
        return _RECORD.size + self.length


def write_container(path: str | os.PathLike, header: MovieHeader, payloads: Iterable[tuple[int, int, bytes]],
                    audio: Iterable[tuple[int, bytes]] | None = None) -> int:
    """Write a movie atomically from ``(start_frame, n_frames, payload)`` chunks, and with a
    header that has audio, ``(samples, payload)`` per latent chunk; returns its size."""
    if (header.audio is None) != (audio is None):
        raise ValueError("audio chunks come with a header that describes them, and only then")
    entries = []
    with atomic_write(path) as f:
        head = header.to_bytes()
        f.write(head)
        offset = len(head)
        expected_start = 0
        for start, n, payload in payloads:
            if start != expected_start or n <= 0:
                raise ValueError(f"chunks must be contiguous: got start {start}, expected {expected_start}")
            checksum = chunk_checksum(start, n, payload)
            f.write(_RECORD.pack(start, n, len(payload), checksum))
            f.write(payload)
            entries.append(ChunkEntry(offset, start, n, len(payload), checksum))
            offset += _RECORD.size + len(payload)
            expected_start += n
        if expected_start != header.frames:
            raise ValueError(f"chunks cover {expected_start} frames, header says {header.frames}")
        # Audio chunk k (its start field) plays over latent chunk k; its n_frames field is samples.
        n_latent = len(entries)
        for k, (samples, payload) in enumerate(audio or ()):
            checksum = chunk_checksum(k, samples, payload)
            f.write(_RECORD.pack(k, samples, len(payload), checksum))
            f.write(payload)
            entries.append(ChunkEntry(offset, k, samples, len(payload), checksum))
            offset += _RECORD.size + len(payload)
        if audio is not None and len(entries) != 2 * n_latent:
            raise ValueError(f"{len(entries) - n_latent} audio chunks for {n_latent} latent chunks")
        index = _INDEX_HEAD.pack(INDEX_MAGIC, len(entries)) + b"".join(
            _INDEX_ENTRY.pack(e.offset, e.start, e.n_frames, e.length, e.checksum) for e in entries)
        index += _U64.pack(xxhash.xxh3_64_intdigest(index))
        f.write(index)
        f.write(_TRAILER.pack(offset, len(index), END_MAGIC))
        return offset + len(index) + _TRAILER.size


def _parse_header(f: BinaryIO, size: int) -> tuple[MovieHeader, int]:
    raw = f.read(_PREFIX.size)
    if len(raw) < _PREFIX.size or raw[:8] != MAGIC:
        if len(raw) < 8 and MAGIC.startswith(raw):
            raise CorruptContainer("truncated before the end of the magic bytes", len(raw))
        raise CorruptContainer("not a latentcast container (bad magic bytes)", 0)
    _, version, _flags, json_len = _PREFIX.unpack(raw)
    if version not in READS:
        raise CorruptContainer(f"unsupported container version {version} (this build reads "
                               f"{', '.join(map(str, READS))})", 8)
    if json_len > MAX_JSON or _PREFIX.size + json_len > size:
        raise CorruptContainer(f"header length {json_len} runs past the end of the file ({size} bytes)", 12)
    body = f.read(json_len)
    try:
        meta = json.loads(body)
        dim = int(meta["latent_dim"])
    except (ValueError, KeyError, TypeError):
        raise CorruptContainer("header JSON is unreadable", _PREFIX.size) from None
    if not 0 < dim <= MAX_LATENT_DIM:
        raise CorruptContainer(f"latent_dim {dim} is out of range", _PREFIX.size)
    ranges, end = _read_ranges(f, version, dim, _PREFIX.size + json_len, size)
    check = f.read(8)
    if len(check) < 8:
        raise CorruptContainer("truncated inside the header", end + len(check))
    if _U64.unpack(check)[0] != xxhash.xxh3_64_intdigest(raw + body + ranges):
        raise CorruptContainer("header checksum mismatch", end)
    try:
        arr = _ranges_array(ranges, version, dim, end)
        header = MovieHeader(
            width=int(meta["width"]), height=int(meta["height"]),
            fps=Fraction(int(meta["fps"][0]), int(meta["fps"][1])),
            frames=int(meta["frames"]), latent_dim=dim, bits=int(meta["bits"]),
            chunk_frames=int(meta["chunk_frames"]), decoder_sha256=str(meta["decoder_sha256"]),
            lo=arr[:dim], hi=arr[dim:], version=version,
            parts=tuple((int(start), str(sha)) for start, sha in meta.get("parts", ())),
            cuts=tuple(int(c) for c in meta.get("cuts", ())),
            scenes=tuple((int(start), int(shots)) for start, shots in meta.get("scenes", ())),
            audio=AudioInfo.from_json(meta["audio"]) if "audio" in meta else None,
        )
    except (ValueError, KeyError, TypeError, IndexError, ZeroDivisionError):
        raise CorruptContainer("header fields are missing or malformed", _PREFIX.size) from None
    if not (1 <= header.bits <= 8 and header.width > 0 and header.height > 0 and header.frames >= 0
            and header.chunk_frames > 0):
        raise CorruptContainer("header values are out of range", _PREFIX.size)
    if (header.audio is not None) != (version >= AUDIO_VERSION):
        raise CorruptContainer(f"a version {version} header {'with' if header.audio else 'without'} audio",
                               _PREFIX.size)
    problem = parts_problem(header.parts, header.frames)
    if problem:
        raise CorruptContainer(f"decoder parts: {problem}", _PREFIX.size)
    problem = scenes_problem(header.cuts, header.scenes, header.frames)
    if problem:
        raise CorruptContainer(f"scenes: {problem}", _PREFIX.size)
    return header, end + 8


def scenes_problem(cuts: tuple[int, ...], scenes: tuple[tuple[int, int], ...], frames: int) -> str | None:
    """What is wrong with a movie's cuts and scenes, or None: cuts rise strictly inside the
    movie, and scenes start at 0 and at cuts, in order, their shots adding up to every shot."""
    if not scenes:
        return None if not cuts else "cuts without scenes"
    rising = all(b > a for a, b in zip(cuts, cuts[1:]))
    if len(cuts) > frames or not rising or (cuts and not 0 < cuts[0] <= cuts[-1] < frames):
        return "cuts must rise strictly inside the movie"
    starts = [0, *cuts]
    at = 0
    for start, shots in scenes:
        if shots < 1 or at >= len(starts) or starts[at] != start:
            return "a scene does not start at the movie's start or at a cut"
        at += shots
    return None if at == len(starts) else "the scenes' shots do not add up to the movie's"


def part_at(parts: tuple[tuple[int, str], ...], frame: int) -> int | None:
    """Index into a movie's part list (MovieHeader.parts) of the part that decodes ``frame``."""
    if not parts:
        return None
    return bisect.bisect_right([start for start, _ in parts], frame) - 1


def part_spans(parts: tuple[tuple[int, str], ...], first: int, n: int) -> list[tuple[int, int]]:
    """Frames [first, first + n) cut where the part that decodes them changes: (offset, count)
    within them, so each span goes through one scene's decoder."""
    if not parts:
        return [(0, n)] if n else []
    cuts = [s - first for s, _ in parts if first < s < first + n]
    bounds = [0, *cuts, n]
    return [(a, b - a) for a, b in zip(bounds, bounds[1:]) if b > a]


MAX_PARTS = 1 << 16
_SHA_HEX = frozenset("0123456789abcdef")


def parts_problem(parts: tuple[tuple[int, str], ...], frames: int) -> str | None:
    """What is wrong with a movie's part list, or None: the first starts at frame 0, starts rise
    strictly and stay inside the movie, and each names a sha256 in lowercase hex."""
    if not parts:
        return None
    if len(parts) > MAX_PARTS:
        return f"{len(parts)} parts, more than {MAX_PARTS}"
    starts = [start for start, _ in parts]
    if starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= max(frames, 1):
        return "the parts' first frames must rise from 0 and stay inside the movie"
    if any(len(sha) != 64 or not set(sha) <= _SHA_HEX for _, sha in parts):
        return "a part's sha256 is not 64 lowercase hex digits"
    return None


def _read_ranges(f: BinaryIO, version: int, dim: int, at: int, size: int) -> tuple[bytes, int]:
    """The ranges' bytes as stored (length field included), and the offset after them."""
    if version < 3:
        ranges = f.read(8 * dim)
        if len(ranges) < 8 * dim:
            raise CorruptContainer("truncated inside the header", at + len(ranges))
        return ranges, at + 8 * dim
    field = f.read(_U32.size)
    if len(field) < _U32.size:
        raise CorruptContainer("truncated inside the header", at + len(field))
    (n,) = _U32.unpack(field)
    if at + _U32.size + n > size or n > 4 * dim + 1024:  # zstd never needs this much for 4*dim bytes
        raise CorruptContainer(f"ranges of {n} bytes run past the end of the header", at)
    coded = f.read(n)
    return field + coded, at + _U32.size + n


def _ranges_array(stored: bytes, version: int, dim: int, at: int) -> np.ndarray:
    """lo and hi (2 * dim float32) from the ranges' stored bytes."""
    if version < 3:
        return np.frombuffer(stored, "<f4").astype(np.float32)
    try:
        raw = decompress_exact(stored[_U32.size:], 4 * dim)
    except ValueError as e:
        raise CorruptContainer(f"quantizer ranges {e}", at) from None
    arr = np.frombuffer(raw, "<f2").astype(np.float32)
    if not np.isfinite(arr).all():
        raise CorruptContainer("quantizer ranges are not finite", at)
    return arr


class Container:
    """A read-only view of a ``.lcv`` file: the header and chunk index are checked on open;
    each chunk is checked when it is read.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            raise CorruptContainer(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise CorruptContainer(f"{self.path}: is a directory") from None
        try:
            self.size = os.fstat(self._f.fileno()).st_size
            self.header, self.header_bytes = _parse_header(self._f, self.size)
            self.chunks = self._parse_index()
        except BaseException:
            self._f.close()
            raise

    def _parse_index(self) -> list[ChunkEntry]:
        size = self.size
        if size < self.header_bytes + _TRAILER.size:
            raise CorruptContainer("truncated: the file ends before its trailer", size)
        self._f.seek(size - _TRAILER.size)
        index_offset, index_len, end_magic = _TRAILER.unpack(self._f.read(_TRAILER.size))
        if end_magic != END_MAGIC:
            raise CorruptContainer("truncated or damaged: no end marker in the trailer", size - 8)
        if not (self.header_bytes <= index_offset and index_offset + index_len == size - _TRAILER.size):
            raise CorruptContainer(f"trailer points at an index ({index_offset}, {index_len} bytes) "
                                   "outside the file", size - _TRAILER.size)
        self._f.seek(index_offset)
        index = self._f.read(index_len)
        if index_len < _INDEX_HEAD.size + 8 or xxhash.xxh3_64_intdigest(index[:-8]) != _U64.unpack(index[-8:])[0]:
            raise CorruptContainer("chunk index checksum mismatch", index_offset)
        magic, n = _INDEX_HEAD.unpack_from(index)
        if magic != INDEX_MAGIC or _INDEX_HEAD.size + n * _INDEX_ENTRY.size + 8 != index_len:
            raise CorruptContainer("chunk index is malformed", index_offset)
        chunks: list[ChunkEntry] = []
        self.audio_chunks: list[ChunkEntry] = []
        expected_offset, expected_start = self.header_bytes, 0
        for i in range(n):
            e = ChunkEntry(*_INDEX_ENTRY.unpack_from(index, _INDEX_HEAD.size + i * _INDEX_ENTRY.size))
            audio = expected_start >= self.header.frames and self.header.audio is not None
            # A latent chunk starts where the last ended; audio chunk k, after them all, plays over latent chunk k.
            want = len(self.audio_chunks) if audio else expected_start
            if e.offset != expected_offset or e.start != want or e.n_frames <= 0 or e.length > MAX_CHUNK_BYTES:
                raise CorruptContainer(f"chunk index entry {i} is inconsistent", index_offset + _INDEX_HEAD.size
                                       + i * _INDEX_ENTRY.size)
            (self.audio_chunks if audio else chunks).append(e)
            expected_offset += e.stored_bytes
            if not audio:
                expected_start += e.n_frames
        if expected_offset != index_offset:
            raise CorruptContainer("chunks and index do not meet", index_offset)
        if expected_start != self.header.frames:
            raise CorruptContainer(f"chunks cover {expected_start} frames, header says {self.header.frames}",
                                   index_offset)
        if self.header.audio is not None and len(self.audio_chunks) != len(chunks):
            raise CorruptContainer(f"{len(self.audio_chunks)} audio chunks for {len(chunks)} latent chunks",
                                   index_offset)
        return chunks

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chunk_index_for_frame(self, frame: int) -> int:
        """Index of the chunk holding ``frame`` (bisection over the index)."""
        if not 0 <= frame < self.header.frames:
            raise IndexError(f"frame {frame} outside 0..{self.header.frames - 1}")
        starts = [c.start for c in self.chunks]
        return bisect.bisect_right(starts, frame) - 1

    def _read_verified(self, e: ChunkEntry, what: str, frames: ChunkEntry) -> bytes:
        """The payload of record ``e`` once its record and checksum match the index;
        CorruptContainer naming ``what`` and the latent frames it covers otherwise."""
        self._f.seek(e.offset)
        raw = self._f.read(e.stored_bytes)
        span = (frames.start, frames.end)
        if len(raw) != e.stored_bytes:
            raise CorruptContainer(f"truncated {what}", e.offset + len(raw), frames=span)
        payload = raw[_RECORD.size:]
        if _RECORD.unpack_from(raw) != (e.start, e.n_frames, e.length, e.checksum) \
                or chunk_checksum(e.start, e.n_frames, payload) != e.checksum:
            raise CorruptContainer(f"{what} (frames {span[0]}-{span[1] - 1}) fails its checksum", e.offset,
                                   frames=span)
        return payload

    def read_payload(self, i: int) -> bytes:
        """The verified payload of chunk ``i``; CorruptContainer (with its frame range) if damaged."""
        return self._read_verified(self.chunks[i], f"chunk {i}", self.chunks[i])

    def read_audio(self, i: int) -> bytes:
        """The verified payload of audio chunk ``i`` (codec.audio), which plays over latent chunk ``i``."""
        return self._read_verified(self.audio_chunks[i], f"audio chunk {i}", self.chunks[i])

    @property
    def audio_bytes(self) -> int:
        """What a viewer receives for the sound: every audio chunk's record and payload."""
        return sum(c.stored_bytes for c in self.audio_chunks)

    def read_chunk(self, i: int) -> np.ndarray:
        """Quantized latents (n_frames, latent_dim) of chunk ``i``."""
        e = self.chunks[i]
        try:
            return decode_chunk(self.read_payload(i), e.n_frames, self.header.latent_dim, self.header.bits,
                                self.header.packed)
        except CorruptContainer as err:
            if err.offset is None:
                raise CorruptContainer(f"chunk {i}: {err}", e.payload_offset, frames=(e.start, e.end)) from None
            raise

    def iter_latents(self, start: int = 0, count: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first_frame, dequantized latents) per chunk, trimmed to [start, start+count)."""
        stop = self.header.frames if count is None else min(self.header.frames, start + count)
        if start >= stop:
            return
        quant = self.header.quantizer
        for i in range(self.chunk_index_for_frame(start), len(self.chunks)):
            e = self.chunks[i]
            if e.start >= stop:
                break
            rows = frames_in(e.start, e.n_frames, start, stop)
            yield e.start + rows.start, quant.dequantize(self.read_chunk(i)[rows])

    def side_information(self) -> bytes:
        """The header exactly as stored, checksum included: what GetMovie sends a viewer."""
        self._f.seek(0)
        return self._f.read(self.header_bytes)

    @property
    def streaming_bytes(self) -> int:
        """What a viewer receives to see the whole movie: the side information (the header)
        and every chunk's record and payload. The index stays on the server."""
        return self.header_bytes + sum(c.stored_bytes for c in self.chunks)

    def breakdown(self) -> dict[str, int]:
        """Bytes by part of the file."""
        chunk_bytes = sum(c.stored_bytes for c in self.chunks)
        payload = sum(c.length for c in self.chunks)
        return {
            "header": self.header_bytes,
            "chunk_records": chunk_bytes - payload,
            "chunk_payloads": payload,
            "audio_chunks": self.audio_bytes,
            "index": self.size - _TRAILER.size - self.header_bytes - chunk_bytes - self.audio_bytes,
            "trailer": _TRAILER.size,
            "total": self.size,
        }


# -- writing a movie's latents ----------------------------------------------------------------

@dataclass
class EncodeResult:
    path: Path
    frames: int
    bytes: int
    streaming_bytes: int  # side information + chunk records + payloads: what a viewer receives
    fps: Fraction
    bits: int
    audio_bytes: int = 0  # the sound's chunks, counted apart from the picture's streaming bytes


# Seconds of video per independently decodable chunk. Each chunk is a zstd frame with its own
# first frame and tables, so longer chunks code smaller. 2 s is a usual streaming segment;
# seeking stays frame-exact, since only the chunk's latents are undeltaed, not its frames decoded.
DEFAULT_CHUNK_SECONDS = 2.0


def chunk_frames_for(fps: Fraction, chunk_seconds: float) -> int:
    if chunk_seconds <= 0:
        raise UsageError(f"--chunk-seconds must be positive, got {chunk_seconds}")
    return max(1, int(round(float(fps) * chunk_seconds)))


def write_latents(latents: np.ndarray, size: tuple[int, int], fps: Fraction, out: str | os.PathLike, bits: int,
                  chunk_frames: int, decoder_sha256: str, parts: tuple[tuple[int, str], ...] = (),
                  cuts: tuple[int, ...] = (), scenes: tuple[tuple[int, int], ...] = (),
                  audio: tuple[AudioInfo, list[tuple[int, bytes]]] | None = None,
                  quantizer: Quantizer | None = None) -> EncodeResult:
    """Quantize float latents (n, dim) of frames of ``size`` (width, height) with per-dimension
    ranges and write a container; ``parts``, ``cuts`` and ``scenes`` as MovieHeader has them.
    The ranges are fitted to ``latents`` unless ``quantizer`` gives them (refined latents keep
    the ranges of the encoder's, which they were refined under)."""
    check_bits(bits)
    n, dim = latents.shape
    if n == 0:
        raise UsageError("nothing to encode: zero frames")
    problem = parts_problem(tuple(parts), n) or scenes_problem(tuple(cuts), tuple(scenes), n)
    if problem:
        raise UsageError(f"decoder parts or scenes: {problem}")
    if quantizer is not None and (quantizer.bits != bits or len(quantizer.lo) != dim):
        raise ValueError(f"a {quantizer.bits}-bit quantizer of {len(quantizer.lo)} dims for {bits}-bit codes of {dim}")
    quant = quantizer or Quantizer.fit(latents, bits)  # reads in slices: ``latents`` may be a memmap of a long movie
    header = MovieHeader(size[0], size[1], fps, n, dim, bits, chunk_frames, decoder_sha256, quant.lo, quant.hi,
                         parts=tuple(parts), cuts=tuple(cuts), scenes=tuple(scenes),
                         audio=audio[0] if audio else None)

    def chunks():
        for s in range(0, n, chunk_frames):
            q = quant.quantize(latents[s : s + chunk_frames])
            yield s, len(q), encode_chunk(q, bits)

    nbytes = write_container(out, header, chunks(), audio[1] if audio else None)
    with Container(out) as c:
        return EncodeResult(Path(out), n, nbytes, c.streaming_bytes, fps, bits, c.audio_bytes)

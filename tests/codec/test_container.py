from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentcast.codec.format.chunks import encode_chunk
from latentcast.codec.format.container import Container, MovieHeader, write_container
from latentcast.codec.format.errors import CorruptContainer
from latentcast.codec.format.quantizer import Quantizer

DIM = 16


def _make(path, frames=23, chunk=5, bits=6, seed=0):
    rng = np.random.default_rng(seed)
    lat = np.cumsum(rng.normal(size=(frames, DIM)), axis=0).astype(np.float32)
    quant = Quantizer.fit(lat, bits)
    q = quant.quantize(lat)
    header = MovieHeader(40, 24, Fraction(25), frames, DIM, bits, chunk, "ab" * 32, quant.lo, quant.hi)
    chunks = [(s, len(q[s : s + chunk]), encode_chunk(q[s : s + chunk], bits)) for s in range(0, frames, chunk)]
    write_container(path, header, chunks)
    return q, quant


def _read_all(path):
    with Container(path) as c:
        return np.concatenate([c.read_chunk(i) for i in range(len(c.chunks))])


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    path = tmp_path_factory.mktemp("lcv") / "m.lcv"
    q, quant = _make(path)
    return path, q, quant


def test_round_trip_and_seek(movie):
    path, q, quant = movie
    assert np.array_equal(_read_all(path), q)
    with Container(path) as c:
        assert c.header.frames == 23 and c.header.bits == 6 and c.header.chunk_frames == 5
        assert len(c.chunks) == 5 and c.chunk_index_for_frame(12) == 2
        parts = list(c.iter_latents(start=7, count=9))
        assert parts[0][0] == 7
        got = np.concatenate([p[1] for p in parts])
        assert np.array_equal(got, quant.dequantize(q[7:16]))
        assert c.breakdown()["total"] == path.stat().st_size


def test_version_1_files_still_read(tmp_path):
    # Version 1 kept one symbol per payload byte; files written then must decode as they did.
    rng = np.random.default_rng(3)
    q = rng.integers(0, 4, size=(12, DIM)).astype(np.uint8)
    quant = Quantizer(2, np.zeros(DIM, np.float32), np.ones(DIM, np.float32))
    header = MovieHeader(40, 24, Fraction(25), 12, DIM, 2, 6, "ab" * 32, quant.lo, quant.hi, version=1)
    path = tmp_path / "v1.lcv"
    write_container(path, header, [(s, 6, encode_chunk(q[s : s + 6], 2, packed=False)) for s in (0, 6)])
    assert path.read_bytes()[8:10] == (1).to_bytes(2, "little")
    with Container(path) as c:
        assert not c.header.packed
    assert np.array_equal(_read_all(path), q)


def test_new_files_are_version_3_and_packed(movie, tmp_path):
    path, _q, _ = movie
    assert path.read_bytes()[8:10] == (3).to_bytes(2, "little")
    with Container(path) as c:
        assert c.header.packed and c.header.version == 3
    raw = bytearray(path.read_bytes())
    raw[8:10] = (5).to_bytes(2, "little")  # 4 is a movie with sound (tests/codec/test_audio.py)
    (tmp_path / "v5.lcv").write_bytes(bytes(raw))
    with pytest.raises(CorruptContainer, match="unsupported container version 5"):
        Container(tmp_path / "v5.lcv")


def test_side_information_is_float16_ranges_in_zstd_and_parses_on_its_own(tmp_path):
    rng = np.random.default_rng(3)
    quant = Quantizer.fit(rng.normal(size=(50, 512)).astype(np.float32), 3)
    q = quant.quantize(rng.normal(size=(6, 512)))
    sizes = {}
    for version in (2, 3):
        header = MovieHeader(320, 180, Fraction(20), 6, 512, 3, 6, "ab" * 32, quant.lo, quant.hi, version=version)
        write_container(tmp_path / f"v{version}.lcv", header, [(0, 6, encode_chunk(q, 3))])
        with Container(tmp_path / f"v{version}.lcv") as c:
            side = c.side_information()
            assert len(side) == c.header_bytes and c.streaming_bytes == c.header_bytes + c.chunks[0].stored_bytes
            assert np.array_equal(c.header.lo, quant.lo) and np.array_equal(c.read_chunk(0), q)
            sizes[version] = len(side)
        parsed = MovieHeader.from_bytes(side)
        assert np.array_equal(parsed.hi, quant.hi) and parsed.version == version
    assert sizes[3] < 0.6 * sizes[2]  # 8 bytes a dimension before, at most 4 before zstd now
    with pytest.raises(CorruptContainer, match="checksum"):
        MovieHeader.from_bytes(side[:-9] + bytes([side[-9] ^ 1]) + side[-8:])
    with pytest.raises(CorruptContainer, match="past its checksum"):
        MovieHeader.from_bytes(side + b"x")
    with pytest.raises(ValueError, match="float16"):  # a writer must round its ranges first
        MovieHeader(320, 180, Fraction(20), 6, 512, 3, 6, "", quant.lo + 1e-4, quant.hi).to_bytes()


def test_foreign_file_says_bad_magic(tmp_path):
    p = tmp_path / "x.lcv"
    p.write_bytes(b"RIFF" + bytes(200))
    with pytest.raises(CorruptContainer, match=r"bad magic bytes\) at byte 0"):
        Container(p)


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "bad.lcv"
    header = MovieHeader(8, 8, Fraction(1), 10, 2, 6, 5, "", np.zeros(2, np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError):
        write_container(path, header, [(0, 5, b"x")])  # covers 5 of 10 frames
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_is_detected(movie, tmp_path_factory, data):
    path, _q, _ = movie
    raw = bytearray(path.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
    raw[pos] ^= data.draw(st.integers(1, 255), label="xor")
    bad = tmp_path_factory.mktemp("flip") / "f.lcv"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CorruptContainer) as err:
        _read_all(bad)
    assert "at byte" in str(err.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_truncation_is_detected(movie, tmp_path_factory, data):
    path, _q, _ = movie
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    bad = tmp_path_factory.mktemp("cut") / "t.lcv"
    bad.write_bytes(raw[:cut])
    with pytest.raises(CorruptContainer):
        _read_all(bad)


def test_damaged_chunk_names_its_frames(movie, tmp_path):
    path, _q, _ = movie
    with Container(path) as c:
        target = c.chunks[3]
    raw = bytearray(path.read_bytes())
    raw[target.payload_offset + 1] ^= 0xFF
    bad = tmp_path / "d.lcv"
    bad.write_bytes(bytes(raw))
    with Container(bad) as c:
        c.read_chunk(0)  # the others still read
        with pytest.raises(CorruptContainer) as err:
            c.read_chunk(3)
    assert err.value.frames == (15, 20)
    assert err.value.offset == target.offset


def _header_with(parts, frames=23):
    lo, hi = np.zeros(DIM, np.float32), np.ones(DIM, np.float32)
    return MovieHeader(40, 24, Fraction(25), frames, DIM, 6, 5, "ab" * 32, lo, hi, parts=parts)


def test_scene_parts_travel_in_the_side_information():
    parts = ((0, "1" * 64), (10, "2" * 64))
    header = MovieHeader.from_bytes(_header_with(parts).to_bytes())
    assert header.parts == parts and header.part_at(9) == 0 and header.part_at(10) == 1
    # Without parts the header keeps the bytes it always had: no key at all.
    assert b"parts" not in _header_with(()).to_bytes() and _header_with(()).part_at(3) is None


@pytest.mark.parametrize("parts", [
    ((1, "1" * 64),),                      # does not start at frame 0
    ((0, "1" * 64), (0, "2" * 64)),        # starts do not rise
    ((0, "1" * 64), (23, "2" * 64)),       # starts past the last frame
    ((0, "1" * 63),),                      # not a sha256
    ((0, "G" * 64),),                      # not lowercase hex
])
def test_a_part_list_a_hostile_server_could_send_is_refused(parts):
    with pytest.raises(CorruptContainer, match="decoder parts"):
        MovieHeader.from_bytes(_header_with(parts).to_bytes())

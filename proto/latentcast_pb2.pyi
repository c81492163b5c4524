from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListMoviesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMoviesResponse(_message.Message):
    __slots__ = ("movies", "next_page_token")
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[Movie]
    next_page_token: str
    def __init__(self, movies: _Optional[_Iterable[_Union[Movie, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetMovieRequest(_message.Message):
    __slots__ = ("movie",)
    MOVIE_FIELD_NUMBER: _ClassVar[int]
    movie: str
    def __init__(self, movie: _Optional[str] = ...) -> None: ...

class Movie(_message.Message):
    __slots__ = ("id", "title", "width", "height", "fps_num", "fps_den", "frames", "duration_s", "streaming_kbps", "decoder_sha256", "decoder_bytes", "latent_dim", "bits", "chunk_frames", "quant_lo", "quant_hi", "stored_bytes", "symbols_packed", "total_kbps", "header", "part_bytes", "audio_kbps", "thumbnail_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_NUM_FIELD_NUMBER: _ClassVar[int]
    FPS_DEN_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    STREAMING_KBPS_FIELD_NUMBER: _ClassVar[int]
    DECODER_SHA256_FIELD_NUMBER: _ClassVar[int]
    DECODER_BYTES_FIELD_NUMBER: _ClassVar[int]
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FRAMES_FIELD_NUMBER: _ClassVar[int]
    QUANT_LO_FIELD_NUMBER: _ClassVar[int]
    QUANT_HI_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_PACKED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_KBPS_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PART_BYTES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_KBPS_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    width: int
    height: int
    fps_num: int
    fps_den: int
    frames: int
    duration_s: float
    streaming_kbps: float
    decoder_sha256: str
    decoder_bytes: int
    latent_dim: int
    bits: int
    chunk_frames: int
    quant_lo: _containers.RepeatedScalarFieldContainer[float]
    quant_hi: _containers.RepeatedScalarFieldContainer[float]
    stored_bytes: int
    symbols_packed: bool
    total_kbps: float
    header: bytes
    part_bytes: int
    audio_kbps: float
    thumbnail_bytes: int
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps_num: _Optional[int] = ..., fps_den: _Optional[int] = ..., frames: _Optional[int] = ..., duration_s: _Optional[float] = ..., streaming_kbps: _Optional[float] = ..., decoder_sha256: _Optional[str] = ..., decoder_bytes: _Optional[int] = ..., latent_dim: _Optional[int] = ..., bits: _Optional[int] = ..., chunk_frames: _Optional[int] = ..., quant_lo: _Optional[_Iterable[float]] = ..., quant_hi: _Optional[_Iterable[float]] = ..., stored_bytes: _Optional[int] = ..., symbols_packed: _Optional[bool] = ..., total_kbps: _Optional[float] = ..., header: _Optional[bytes] = ..., part_bytes: _Optional[int] = ..., audio_kbps: _Optional[float] = ..., thumbnail_bytes: _Optional[int] = ...) -> None: ...

class GetThumbnailsRequest(_message.Message):
    __slots__ = ("movie",)
    MOVIE_FIELD_NUMBER: _ClassVar[int]
    movie: str
    def __init__(self, movie: _Optional[str] = ...) -> None: ...

class Thumbnails(_message.Message):
    __slots__ = ("vtt", "sprite", "sprite_sha256")
    VTT_FIELD_NUMBER: _ClassVar[int]
    SPRITE_FIELD_NUMBER: _ClassVar[int]
    SPRITE_SHA256_FIELD_NUMBER: _ClassVar[int]
    vtt: str
    sprite: bytes
    sprite_sha256: str
    def __init__(self, vtt: _Optional[str] = ..., sprite: _Optional[bytes] = ..., sprite_sha256: _Optional[str] = ...) -> None: ...

class GetDecoderRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class DecoderChunk(_message.Message):
    __slots__ = ("offset", "total_bytes", "data", "config_json", "encoding", "decoded_bytes")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DECODED_BYTES_FIELD_NUMBER: _ClassVar[int]
    offset: int
    total_bytes: int
    data: bytes
    config_json: str
    encoding: str
    decoded_bytes: int
    def __init__(self, offset: _Optional[int] = ..., total_bytes: _Optional[int] = ..., data: _Optional[bytes] = ..., config_json: _Optional[str] = ..., encoding: _Optional[str] = ..., decoded_bytes: _Optional[int] = ...) -> None: ...

class StreamLatentsRequest(_message.Message):
    __slots__ = ("movie", "start_frame", "frame_count")
    MOVIE_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    movie: str
    start_frame: int
    frame_count: int
    def __init__(self, movie: _Optional[str] = ..., start_frame: _Optional[int] = ..., frame_count: _Optional[int] = ...) -> None: ...

class LatentChunk(_message.Message):
    __slots__ = ("start_frame", "n_frames", "payload", "checksum", "audio", "audio_samples", "audio_checksum")
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    N_FRAMES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    start_frame: int
    n_frames: int
    payload: bytes
    checksum: int
    audio: bytes
    audio_samples: int
    audio_checksum: int
    def __init__(self, start_frame: _Optional[int] = ..., n_frames: _Optional[int] = ..., payload: _Optional[bytes] = ..., checksum: _Optional[int] = ..., audio: _Optional[bytes] = ..., audio_samples: _Optional[int] = ..., audio_checksum: _Optional[int] = ...) -> None: ...

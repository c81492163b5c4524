"""Playback: stream a movie's latents, decode them locally, write or pace the frames.

    receiver thread:  StreamLatents --verify--> queue (the jitter buffer, in chunks)
    main thread:      queue --unzstd/undelta/dequantize--> latents --decoder--> frames --> writer

With ``realtime`` the main thread releases frames on the movie's clock after pre-filling the
buffer; a frame that is not ready on time counts as a stall and the clock restarts from it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

from latentcast.client.checks import printable
from latentcast.codec import video
from latentcast.codec.chapters import chapters_within, container_chapters
from latentcast.codec.format.errors import ModelError, UsageError
from latentcast.codec.format.rates import kbps
from latentcast.codec.progress import progress_bar
from latentcast.codec.quality import ReferencePSNR
from latentcast.codec.runtime.backends import warm_up
from latentcast.codec.runtime.decode import decode_frames

from .session import Session
from .wire import chunk_latents, chunk_sound, movie_side_information

log = logging.getLogger(__name__)


@dataclass
class PlaybackSummary:
    movie_id: str
    title: str
    frames: int
    duration_s: float
    side_bytes: int  # the GetMovie answer: side information a viewer needs before any frame
    latent_bytes: int
    decoder_bytes: int  # downloaded now, or (cached) what a first view downloads
    decoder_downloaded: bool
    streaming_kbps: float  # side information and latents over the duration
    total_kbps: float  # the same with the decoder: what a first view costs
    decode_fps: float
    wall_s: float
    first_frame_s: float
    stalls: int
    reconnects: int
    psnr: float | None = None
    parts_fetched: int = 0  # scene parts this playback used (downloaded, or from the cache)
    runtime: str = ""  # what decoded: onnx or torch
    audio_bytes: int = 0  # the sound's chunks as received, apart from the picture's bytes
    audio_kbps: float = 0.0
    audio_codec: str = "Opus"  # or "AAC", a source's track kept as it was

    def lines(self) -> list[str]:
        out = [
            f"movie        {printable(self.title)} ({self.movie_id})",
            f"frames       {self.frames} ({self.duration_s:.2f} s of video) in {self.wall_s:.2f} s",
            f"received     side information {self.side_bytes:,} bytes; latents {self.latent_bytes:,} bytes; "
            + (f"decoder {self.decoder_bytes:,} bytes" if self.decoder_downloaded else
               f"decoder cached ({self.decoder_bytes:,} bytes on a first view)")
            + (f"; scene parts used: {self.parts_fetched}" if self.parts_fetched else ""),
            f"bitrate      total {self.total_kbps:.1f} kbit/s (a first view, decoder included); streaming "
            f"{self.streaming_kbps:.1f} kbit/s (side information and latents)",
            f"sound        " + (f"{self.audio_kbps:.1f} kbit/s {self.audio_codec} ({self.audio_bytes:,} bytes), apart "
                                f"from the picture's bitrate above" if self.audio_bytes else "none (a silent movie)"),
            f"decode       {self.decode_fps:.1f} frames/s" + (f" ({self.runtime})" if self.runtime else ""),
            f"first frame  {self.first_frame_s * 1000:.0f} ms",
            f"stalls       {self.stalls}; reconnects {self.reconnects}",
        ]
        if self.psnr is not None:
            out.append(f"PSNR         {self.psnr:.2f} dB against the reference")
        return out


_END = object()


def play(session: Session, movie_name: str, output: str, start: int = 0, count: int | None = None,
         realtime: bool = False, reference: str | None = None, batch: int = 16, buffer_s: float = 1.0,
         progress: bool = True, on_frames=None, runtime: str = "auto") -> PlaybackSummary:
    """Play ``movie_name`` (id or exact title) from the server into ``output``."""
    video.output_kind(output)
    t0 = time.monotonic()
    warm_up(runtime)
    movie = session.get_movie(movie_name)
    if start < 0 or start >= movie.frames:
        raise UsageError(f"start frame {start} is outside the movie's {movie.frames} frames")
    if count is not None and count <= 0:
        raise UsageError("--frames must be positive")
    stop = movie.frames if count is None else min(movie.frames, start + count)
    # checked before the decoder's download, which a bad movie would waste
    quant, parts, scenes, sound = movie_side_information(movie)
    decoders, downloaded = session.decoders(movie, parts, runtime=runtime)
    decoders.prefetch(start)  # the first scene's part comes while the stream starts
    cfg = decoders.cfg
    if (cfg.width, cfg.height, cfg.latent_dim) != (movie.width, movie.height, movie.latent_dim):
        raise ModelError("the downloaded decoder does not fit the movie's size or latent count")
    fps = Fraction(movie.fps_num, movie.fps_den)
    chapters = None
    if video.output_kind(output) in ("mkv", "mp4"):  # the scenes, as chapters of what is played
        chapters = container_chapters(chapters_within(scenes, start, stop), fps)

    chunks: queue.Queue = queue.Queue(maxsize=max(4, int(buffer_s * float(fps) / max(1, movie.chunk_frames)) + 4))
    stop_event = threading.Event()

    def receive():
        try:
            for chunk in session.stream_latents(movie, start, stop):
                while not stop_event.is_set():
                    try:
                        chunks.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop_event.is_set():
                    return
            chunks.put(_END)
        except BaseException as e:  # handed to the main thread, which raises it
            chunks.put(e)

    receiver = threading.Thread(target=receive, name="latentcast-receive", daemon=True)
    receiver.start()

    meter = ReferencePSNR(reference, (movie.width, movie.height), start) if reference else None
    written = stalls = 0
    decode_s = 0.0
    first_frame_s = None
    clock0 = None
    frame_period = 1 / float(fps)
    try:
        # Built while the first chunk streams in, and outside decode_s, so that the decode rate is
        # the frames' own (as `decode` reports it); scene parts built later still count.
        decoders.decoder_at(start)
        with video.open_writer(output, movie.width, movie.height, fps, chapters, audio=sound) as writer, \
                progress_bar(progress, total=stop - start, desc="playing", unit="frame") as bar:
            while True:
                item = chunks.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                latents = chunk_latents(movie, item, quant, start + written, stop)
                if sound is not None:  # the chunk's sound first: the muxer then releases each frame as it comes
                    writer.write_audio(chunk_sound(movie, item, sound, start + written, stop))
                for frames, secs in _timed(decode_frames(decoders, start + written, latents, batch)):
                    decode_s += secs
                    if realtime and clock0 is None:
                        # Pre-fill the jitter buffer (or take what there is when the stream is short).
                        fill_until = time.monotonic() + buffer_s
                        while chunks.qsize() * movie.chunk_frames < buffer_s * float(fps) and receiver.is_alive() \
                                and time.monotonic() < fill_until:
                            time.sleep(0.01)
                        clock0 = time.monotonic() - written * frame_period
                    for frame in frames:
                        if realtime:
                            due = clock0 + written * frame_period
                            now = time.monotonic()
                            if now > due + frame_period:
                                stalls += 1
                                clock0 = now - written * frame_period
                            elif now < due:
                                time.sleep(due - now)
                        writer.write(frame)
                        if first_frame_s is None:
                            first_frame_s = time.monotonic() - t0
                        written += 1
                    if on_frames is not None:
                        on_frames(frames)
                    if meter is not None:
                        meter.update(frames)
                    bar.update(len(frames))
    finally:
        stop_event.set()
        receiver.join(timeout=5)
        decoders.close()
    if written != stop - start:
        raise ModelError(f"playback ended after {written} of {stop - start} frames")
    duration = written / float(fps)
    side = movie.ByteSize()
    streaming = side + session.received.latent_bytes
    # A first view downloads the base and the parts of the scenes it reaches.
    decoder_bytes = session.received.decoder_bytes if downloaded else movie.decoder_bytes + movie.part_bytes
    return PlaybackSummary(
        movie_id=movie.id, title=movie.title, frames=written, duration_s=duration, side_bytes=side,
        latent_bytes=session.received.latent_bytes, decoder_bytes=decoder_bytes, decoder_downloaded=downloaded,
        streaming_kbps=kbps(streaming, written, float(fps)), total_kbps=kbps(streaming + decoder_bytes, written,
                                                                          float(fps)),
        decode_fps=written / max(decode_s, 1e-9), wall_s=time.monotonic() - t0,
        first_frame_s=first_frame_s or 0.0, stalls=stalls, reconnects=session.received.reconnects,
        psnr=meter.psnr if meter else None, parts_fetched=len(decoders.fetched), runtime=decoders.runtime,
        audio_bytes=session.received.audio_bytes, audio_kbps=kbps(session.received.audio_bytes, written, float(fps)),
        audio_codec=sound.codec_name if sound is not None else "Opus")


def _timed(it):
    """Pair each item of an iterator with the seconds spent producing it."""
    while True:
        t = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        yield item, time.perf_counter() - t

// The browser player: the movie's description and decoders come from the HTTP side with the
// token (never in a URL), its chunks from their public, cacheable URLs; each chunk is decoded
// here (zstd, unpack, undelta, dequantize: integer-exact ports of codec/format/chunks.py and
// quantizer.py) and each frame is decoded by ONNX Runtime Web (WASM). Its decoder is the
// download every viewer gets (GET /v1/decoders/{sha256}), decoded and verified by decoder.js,
// with a scene's part applied there; the base's graph (GET .../graph.onnx, a few kB with no
// weights) reads the weights from those bytes as ONNX external data.
import * as ort from "/web/vendor/ort.wasm.min.mjs";
import { inflateExact } from "/web/zstd.js";
import { DecoderError, applyPart, decoderFile, verified } from "/web/decoder.js";
import { checksumMatches } from "/web/xxh3.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "latentcast-token";
const movieId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

class PlayerError extends Error {}

function show(message) {
  $("error").textContent = message;
}

async function fetchChecked(url, { auth = false, type = "arrayBuffer" } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  let r;
  try {
    r = await fetch(url, { headers, cache: auth ? "no-store" : "default" });
  } catch (e) {
    throw new PlayerError(`cannot reach the server (${e.message})`);
  }
  if (r.status === 401) throw Object.assign(new PlayerError("the server asks for a token"), { status: 401 });
  if (!r.ok) {
    let detail = `HTTP ${r.status}`;
    try { detail = (await r.json()).error || detail; } catch (_) { /* not JSON */ }
    throw new PlayerError(detail);
  }
  return type === "json" ? r.json() : { body: new Uint8Array(await r.arrayBuffer()), headers: r.headers };
}

// -- the movie's side information: codec/format/container.py's header -------------------------

function float16(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function parseHeader(bytes) {
  const magic = [0x89, 0x4c, 0x43, 0x56, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 16 || magic.some((b, i) => bytes[i] !== b)) throw new PlayerError("not a latentcast movie header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(8, true), jsonLength = view.getUint32(12, true);
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + jsonLength)));
  let at = 16 + jsonLength;
  const n = 2 * meta.latent_dim;
  let ranges;
  if (version >= 3) {
    const coded = view.getUint32(at, true);
    const half = inflateExact(bytes.subarray(at + 4, at + 4 + coded), 2 * n, "the header's ranges", PlayerError);
    const h = new DataView(half.buffer, half.byteOffset, half.byteLength);
    ranges = Float32Array.from({ length: n }, (_, i) => float16(h.getUint16(2 * i, true)));
  } else {
    ranges = new Float32Array(bytes.slice(at, at + 4 * n).buffer);
  }
  return { version, meta, lo: ranges.subarray(0, meta.latent_dim), hi: ranges.subarray(meta.latent_dim) };
}

// -- a chunk's latents: codec/format/chunks.py and quantizer.py, exactly -------------------------

function chunkLatents(payload, nFrames, dim, bits, packed, lo, step) {
  const count = nFrames * dim;
  const per = packed && bits <= 4 ? Math.floor(8 / bits) : 1;
  const raw = inflateExact(payload, Math.ceil(count / per), "a chunk", PlayerError);
  const mask = (1 << bits) - 1;
  const symbols = new Uint8Array(count);
  for (let i = 0; i < count; i++) symbols[i] = per > 1 ? (raw[(i / per) | 0] >> (bits * (i % per))) & mask : raw[i];
  const out = new Float32Array(count);
  for (let d = 0; d < dim; d++) {
    let q = 0;
    for (let t = 0; t < nFrames; t++) {
      q = (q + symbols[d * nFrames + t]) & mask; // the running sum of the deltas, modulo 2**bits
      // float32 at every step, as numpy computes lo + q * step
      out[t * dim + d] = Math.fround(lo[d] + Math.fround(q * step[d]));
    }
  }
  return out;
}

// -- the sound: codec/audio.py's chunks, decoded with WebCodecs ---------------------------------

const RATE = 48000;

// Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716, 3.1): codec/audio.py's _opus_samples.
function opusSamples(packet) {
  const config = packet[0] >> 3, code = packet[0] & 3;
  const size = config < 12 ? [480, 960, 1920, 2880][config & 3]
    : config < 16 ? [480, 960][config & 1] : [120, 240, 480, 960][config & 3];
  const frames = code === 0 ? 1 : code < 3 ? 2 : (packet.length > 1 ? packet[1] & 0x3f : 0);
  return size * frames;
}

class Sound {
  // One self-contained stream per latent chunk: i32 lead (samples at the coded rate to drop,
  // or silence to put first when negative), then (u16 length, packet)...; it decodes to its
  // chunk's span exactly, so it is scheduled on the frame clock. Opus (re-coded or kept), or an
  // AAC track kept as it was (--audio copy) at its own rate.
  constructor(movie, info) {
    this.movie = movie;
    this.channels = info.channels;
    this.codec = info.codec || "opus";
    this.rate = info.rate || RATE;
    this.copied = !!info.copied;
    this.head = Uint8Array.from(atob(info.extradata), (c) => c.charCodeAt(0)); // OpusHead, or AAC's config
    this.preSkip = this.codec === "opus" ? this.head[10] | (this.head[11] << 8) : 0;
    this.chunks = new Map();
    this.context = null;
    this.sources = [];
  }

  config() {
    if (this.codec === "opus") {
      return { codec: "opus", sampleRate: RATE, numberOfChannels: this.channels, description: this.head };
    }
    const objectType = this.head[0] >> 3; // AudioSpecificConfig: 2 is AAC-LC, 5 HE-AAC, 29 HE-AACv2
    return { codec: `mp4a.40.${objectType}`, sampleRate: this.rate, numberOfChannels: this.channels,
      description: this.head };
  }

  chunk(index) {
    if (!this.chunks.has(index)) {
      const url = `/v1/movies/${encodeURIComponent(this.movie.id)}/audio/${index}`;
      this.chunks.set(index, fetchChecked(url).then(({ body, headers }) => {
        const samples = Number(headers.get("X-Latentcast-Samples"));
        if (!checksumMatches(index, samples, body, headers.get("X-Latentcast-Checksum"))) {
          throw new PlayerError(`the sound's chunk ${index} failed its checksum`);
        }
        return this.decode(body, samples);
      }));
      this.chunks.get(index).catch(() => this.chunks.delete(index));
      for (const old of this.chunks.keys()) if (old < index - 2 || old > index + 8) this.chunks.delete(old);
    }
    return this.chunks.get(index);
  }

  // The chunk's planes at the coded rate: ``samples`` (counted at 48 kHz) of its span.
  async decode(body, samples) {
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const lead = view.getInt32(0, true);
    const planes = Array.from({ length: this.channels }, () => []);
    let failure = null, coded = 0;
    const decoder = new AudioDecoder({
      output: (data) => {
        for (let c = 0; c < this.channels; c++) {
          const plane = new Float32Array(data.numberOfFrames);
          data.copyTo(plane, { planeIndex: c, format: "f32-planar" });
          planes[c].push(plane);
        }
        data.close();
      },
      error: (e) => { failure = e; },
    });
    const config = this.config();
    if (!(await AudioDecoder.isConfigSupported(config)).supported) {
      throw new PlayerError(`this browser cannot decode the sound (${config.codec})`);
    }
    decoder.configure(config);
    for (let at = 4, t = 0; at < body.length;) {
      const n = view.getUint16(at, true);
      const packet = body.subarray(at + 2, at + 2 + n);
      decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: t, data: packet }));
      coded += this.codec === "opus" ? opusSamples(packet) : 1024;
      at += 2 + n;
      t += 20000;
    }
    await decoder.flush();
    decoder.close();
    if (failure) throw new PlayerError(`the sound would not decode (${failure.message})`);
    const length = planes[0].reduce((n, p) => n + p.length, 0);
    // A decoder that kept the Opus encoder's pre-skip (it gave every sample it was sent) is trimmed here.
    const first = lead + (this.codec === "opus" && length === coded ? this.preSkip : 0);
    const want = Math.round(samples * this.rate / RATE);
    const whole = planes.map((parts) => {
      const out = new Float32Array(Math.max(0, -first) + length);
      let at = Math.max(0, -first); // a negative lead: silence first
      for (const p of parts) { out.set(p, at); at += p.length; }
      return out.subarray(Math.max(0, first));
    });
    if (whole[0].length < want && !this.copied) throw new PlayerError("an audio chunk holds fewer samples than promised");
    return whole.map((plane) => {
      if (plane.length >= want) return plane.subarray(0, want);
      const padded = new Float32Array(want); // a kept track that ended before the picture
      padded.set(plane);
      return padded;
    });
  }

  // Play chunk ``index``'s sound from ``offset`` samples (at 48 kHz) in, at ``when`` on the audio clock.
  async schedule(index, offset, when) {
    const planes = await this.chunk(index);
    offset = Math.round(offset * this.rate / RATE);
    if (!this.context || offset >= planes[0].length) return;
    const buffer = this.context.createBuffer(this.channels, planes[0].length - offset, this.rate);
    planes.forEach((plane, c) => buffer.copyToChannel(plane.subarray(offset), c));
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.start(Math.max(when, this.context.currentTime));
    this.sources.push(source);
    this.scheduled = (this.scheduled || 0) + 1;
  }

  stop() {
    for (const s of this.sources) { try { s.stop(); } catch (_) { /* already ended */ } }
    this.sources = [];
  }
}

// -- the player --------------------------------------------------------------------------------

class Player {
  constructor(movie, header) {
    this.movie = movie;
    this.meta = header.meta;
    this.width = movie.width;
    this.height = movie.height;
    this.dim = movie.latent_dim;
    this.frames = Number(movie.frames);
    this.fps = movie.fps_num / movie.fps_den;
    this.chunkFrames = Number(movie.chunk_frames);
    this.bits = movie.bits;
    this.packed = !!movie.symbols_packed;
    this.lo = header.lo;
    const levels = (1 << this.bits) - 1;
    this.step = Float32Array.from(header.lo, (l, d) => {
      const span = Math.fround(header.hi[d] - l);
      return span > 0 ? Math.fround(span / levels) : 1;
    });
    this.parts = this.meta.parts || [];
    this.sound = this.meta.audio && globalThis.AudioDecoder ? new Sound(movie, this.meta.audio) : null;
    this.silentWhy = this.meta.audio && !this.sound ? "no sound: this browser has no WebCodecs here (https needed)" : "";
    this.sessions = new Map(); // sha256 -> InferenceSession promise
    this.files = new Map(); // sha256 -> its verified safetensors bytes, as a promise
    this.downloaded = { decoder: 0, graph: 0 }; // bytes received for the decoder: its files, and the graph
    this.chunks = new Map(); // chunk index -> latents promise
    this.frame = 0;
    this.playing = false;
    this.decoded = 0;
    this.decodeSeconds = 0;
    this.canvas = $("screen");
    this.canvas.width = this.width;
    this.canvas.height = this.height;
    this.context = this.canvas.getContext("2d");
    this.image = this.context.createImageData(this.width, this.height);
  }

  // A decoder or part as sent, inflated and checked against its sha256 before anything is built from it.
  file(sha) {
    if (!this.files.has(sha)) {
      this.files.set(sha, fetchChecked(`/v1/decoders/${sha}`, { auth: true }).then(({ body, headers }) => {
        this.downloaded.decoder += body.length;
        return verified(decoderFile(body, Number(headers.get("X-Latentcast-Decoded-Bytes"))), sha, "decoder");
      }));
      this.files.get(sha).catch(() => this.files.delete(sha));
    }
    return this.files.get(sha);
  }

  // The base's graph, fetched once: every scene's session reads its own weights through it.
  graph() {
    if (!this.graphBytes) {
      this.graphBytes = fetchChecked(`/v1/decoders/${this.movie.decoder_sha256}/graph.onnx`, { auth: true })
        .then(({ body, headers }) => {
          this.downloaded.graph += body.length;
          return inflateExact(body, Number(headers.get("X-Latentcast-Decoded-Bytes")), "the decoder graph", DecoderError);
        });
      this.graphBytes.catch(() => { this.graphBytes = null; });
    }
    return this.graphBytes;
  }

  decoderFor(frame) {
    const base = this.movie.decoder_sha256;
    let sha = base;
    for (const [start, partSha] of this.parts) if (start <= frame) sha = partSha;
    if (!this.sessions.has(sha)) {
      this.sessions.set(sha, (async () => {
        const [graph, baseFile, partFile] = await Promise.all([this.graph(), this.file(base),
          sha === base ? null : this.file(sha)]);
        const weights = partFile ? applyPart(baseFile, base, partFile, sha) : baseFile;
        try {
          // Marks, one pair per scene's session, for benchmarks/browser_download.py's breakdown.
          performance.mark("latentcast:session-start", { detail: sha });
          const session = await ort.InferenceSession.create(graph, { executionProviders: ["wasm"],
            graphOptimizationLevel: "all", externalData: [{ path: "decoder.safetensors", data: weights }] });
          performance.mark("latentcast:session-built", { detail: sha });
          return session;
        } catch (e) {
          throw new PlayerError(`the decoder would not build in this browser (${e.message || e})`);
        }
      })());
      this.sessions.get(sha).catch(() => this.sessions.delete(sha));
    }
    return this.sessions.get(sha);
  }

  chunk(index) {
    if (!this.chunks.has(index)) {
      const url = `/v1/movies/${encodeURIComponent(this.movie.id)}/chunks/${index}`;
      this.chunks.set(index, fetchChecked(url).then(({ body, headers }) => {
        const start = Number(headers.get("X-Latentcast-Start-Frame")), n = Number(headers.get("X-Latentcast-Frames"));
        if (start !== index * this.chunkFrames || !(n > 0) || n > this.chunkFrames) throw new PlayerError("a chunk does not fit the movie");
        if (!checksumMatches(start, n, body, headers.get("X-Latentcast-Checksum"))) {
          throw new PlayerError(`chunk ${index} failed its checksum`);
        }
        return chunkLatents(body, n, this.dim, this.bits, this.packed, this.lo, this.step);
      }));
      this.chunks.get(index).catch(() => this.chunks.delete(index));
      for (const old of this.chunks.keys()) if (old < index - 2 || old > index + 8) this.chunks.delete(old);
    }
    return this.chunks.get(index);
  }

  async decode(frame) {
    const index = Math.floor(frame / this.chunkFrames);
    this.chunk(index + 1 < Math.ceil(this.frames / this.chunkFrames) ? index + 1 : index); // read ahead
    const [latents, session] = await Promise.all([this.chunk(index), this.decoderFor(frame)]);
    const row = frame - index * this.chunkFrames;
    const z = latents.subarray(row * this.dim, (row + 1) * this.dim);
    const t0 = performance.now();
    const out = await session.run({ latents: new ort.Tensor("float32", Float32Array.from(z), [1, this.dim]) });
    this.decodeSeconds += (performance.now() - t0) / 1000;
    this.decoded += 1;
    return out.frames.data;
  }

  draw(pixels, frame) {
    const rgba = this.image.data;
    for (let i = 0, j = 0; i < pixels.length; i += 3, j += 4) {
      rgba[j] = pixels[i]; rgba[j + 1] = pixels[i + 1]; rgba[j + 2] = pixels[i + 2]; rgba[j + 3] = 255;
    }
    this.context.putImageData(this.image, 0, 0);
    this.frame = frame;
    this.shown = frame;
    $("seek").value = String(frame);
    const clock = (f) => { const s = Math.floor(f / this.fps); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; };
    $("time").textContent = `${clock(frame)} / ${clock(this.frames)}`;
    $("status").textContent = `frame ${frame + 1} of ${this.frames} · decode ${this.decodeFps().toFixed(1)} frames/s · ` +
      `${ort.env.wasm.numThreads} threads · ` + (this.sound ? "sound" : this.silentWhy || "silent movie");
  }

  decodeFps() { return this.decoded / Math.max(this.decodeSeconds, 1e-9); }

  async showFrame(frame) {
    frame = Math.max(0, Math.min(this.frames - 1, frame | 0));
    this.draw(await this.decode(frame), frame);
    return frame;
  }

  async play() {
    if (this.playing) return;
    this.playing = true;
    $("play").textContent = "Pause";
    const LEAD = 0.15; // seconds: room to schedule the first sound before its frame is due
    if (this.sound && !this.sound.context) this.sound.context = new AudioContext({ sampleRate: RATE });
    let start, first, audioStart;
    const restart = (frame) => { // picture and sound start together from ``frame``
      start = performance.now() + LEAD * 1000;
      first = frame;
      if (this.sound) {
        this.sound.stop();
        audioStart = this.sound.context.currentTime + LEAD;
        const index = Math.floor(frame / this.chunkFrames);
        this.sound.schedule(index, this.sample(frame) - this.sample(index * this.chunkFrames), audioStart);
      }
    };
    restart(this.frame + 1);
    while (this.playing && this.frame < this.frames - 1) {
      const next = this.frame + 1;
      if (this.sound && next !== first && next % this.chunkFrames === 0) // a new chunk: its sound, on the clock
        this.sound.schedule(next / this.chunkFrames, 0, audioStart + (next - first) / this.fps);
      const pixels = await this.decode(next);
      if (!this.playing) break;
      const due = start + ((next - first) * 1000) / this.fps;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else if (wait < -1000 / this.fps) restart(next); // late: the clock, and the sound, restart here
      this.draw(pixels, next);
    }
    this.pause();
  }

  sample(frame) { return Math.round((frame * RATE * this.movie.fps_den) / this.movie.fps_num); }

  pause() {
    if (this.sound) this.sound.stop();
    this.playing = false;
    $("play").textContent = "Play";
  }

  async seek(frame) {
    const wasPlaying = this.playing;
    this.pause();
    const shown = await this.showFrame(frame);
    if (wasPlaying) this.play();
    return shown;
  }
}

// -- seek previews: codec/explore/thumbnails.py's WebVTT track and JPEG sprite ------------------

function seconds(stamp) {
  const [h, m, s] = stamp.split(":").map(Number);
  return h * 3600 + m * 60 + s;
}

class SeekPreviews {
  // Cues of "start --> end" and "thumbnails.jpg#xywh=x,y,w,h"; the sprite behind the token, as a blob URL.
  static async load(movie) {
    if (!(Number(movie.thumbnail_bytes) > 0)) return null;
    const base = `/v1/movies/${encodeURIComponent(movie.id)}/thumbnails`;
    const [{ body: vtt }, { body: sprite }] = await Promise.all([fetchChecked(`${base}.vtt`, { auth: true }),
      fetchChecked(`${base}.jpg`, { auth: true })]);
    const cues = [];
    const lines = new TextDecoder().decode(vtt).split(/\r?\n/);
    for (let i = 0; i + 1 < lines.length; i++) {
      const time = lines[i].match(/^([\d:.]+) --> ([\d:.]+)/);
      const spot = time && lines[i + 1].match(/#xywh=(\d+),(\d+),(\d+),(\d+)$/);
      if (spot) cues.push({ start: seconds(time[1]), end: seconds(time[2]), rect: spot.slice(1).map(Number) });
    }
    return new SeekPreviews(cues, URL.createObjectURL(new Blob([sprite], { type: "image/jpeg" })));
  }

  constructor(cues, url) {
    this.cues = cues;
    this.url = url;
  }

  at(time) {
    return this.cues.find((c) => time >= c.start && time < c.end) || this.cues[this.cues.length - 1];
  }

  // Show the picture for ``time`` above the seek bar, at ``x`` pixels from the controls' left edge.
  show(time, x) {
    const cue = this.at(time), [cx, cy, w, h] = cue.rect, box = $("preview");
    Object.assign(box.style, { display: "block", width: `${w}px`, height: `${h}px`, left: `${x}px`,
      backgroundImage: `url(${this.url})`, backgroundPosition: `${-cx}px ${-cy}px` });
    return cue;
  }

  hide() { $("preview").style.display = "none"; }
}

function hookPreviews(player, previews) {
  const bar = $("seek");
  const place = (fraction) => {
    const frame = Math.round(fraction * (player.frames - 1));
    const x = bar.offsetLeft + fraction * bar.offsetWidth;
    return previews.show(frame / player.fps, x);
  };
  bar.addEventListener("mousemove", (e) => {
    const r = bar.getBoundingClientRect();
    place(Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)));
  });
  bar.addEventListener("mouseleave", () => previews.hide());
  bar.addEventListener("input", () => place(Number(bar.value) / Math.max(1, player.frames - 1)));
  bar.addEventListener("change", () => previews.hide());
}

async function start() {
  if (!globalThis.WebAssembly) throw new PlayerError("this browser has no WebAssembly, which the decoder runs on");
  // Threads need a cross-origin isolated page, which /watch is (COOP and COEP headers).
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.wasmPaths = "/web/vendor/";
  let movie;
  for (;;) {
    try {
      movie = await fetchChecked(`/v1/movies/${encodeURIComponent(movieId)}`, { auth: true, type: "json" });
      break;
    } catch (e) {
      if (e.status !== 401) throw e;
      if (sessionStorage.getItem(TOKEN_KEY)) show("that token was refused");
      sessionStorage.removeItem(TOKEN_KEY);
      await askToken();
    }
  }
  $("login").style.display = "none";
  const header = parseHeader(Uint8Array.from(atob(movie.header), (c) => c.charCodeAt(0)));
  const player = new Player(movie, header);
  document.title = movie.title;
  $("title").textContent = movie.title;
  $("seek").max = String(player.frames - 1);
  await player.showFrame(0);
  player.firstFrameMs = performance.now(); // from navigation: what benchmarks/browser_download.py reports
  $("play").disabled = $("seek").disabled = false;
  $("play").onclick = () => (player.playing ? player.pause() : player.play().catch(fail));
  $("seek").oninput = () => player.seek(Number($("seek").value)).catch(fail);
  // Seek previews are a nicety: a movie without them, or a failed fetch, plays as before.
  player.previews = await SeekPreviews.load(movie).catch(() => null);
  if (player.previews) hookPreviews(player, player.previews);
  return player;
}

function askToken() {
  $("login").style.display = "block";
  $("token").focus();
  return new Promise((resolve) => {
    $("login").onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()); // kept for this tab only, never in a URL
      $("token").value = "";
      resolve();
    };
  });
}

function fail(e) {
  show(e instanceof PlayerError || e instanceof DecoderError ? e.message : `the player failed: ${e.message || e}`);
  $("status").textContent = "stopped";
  throw e;
}

// What the tests (and a curious viewer's console) drive: ready resolves to the player.
window.latentcast = { ready: start().catch(fail) };

// The decoder download in the browser: the same bytes every viewer receives (GET
// /v1/decoders/{sha256}), decoded and checked here as the CLI player does, so a browser viewer
// downloads what `total` counts and nothing bigger. Integer-exact ports of
// codec/format/decoder_file.py (the spans), codec/format/rans.py (the weight codes' coder) and
// codec/format/decoder_state.py (a scene's part applied to its base), plus SHA-256, which
// WebCrypto offers only in a secure context. tests/web/test_browser.py checks each against
// the Python side, bit for bit.
import { inflateExact } from "/web/zstd.js";

export class DecoderError extends Error {}

// -- SHA-256 (FIPS 180-4) ---------------------------------------------------------------------

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256Hex(bytes) {
  const n = bytes.length, padded = new Uint8Array((((n + 8) >> 6) + 1) << 6);
  padded.set(bytes);
  padded[n] = 0x80;
  const tail = new DataView(padded.buffer);
  tail.setUint32(padded.length - 8, Math.floor(n / 0x20000000)); // the length in bits, big-endian
  tail.setUint32(padded.length - 4, (n << 3) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, r) => (x >>> r) | (x << (32 - r));
  for (let at = 0; at < padded.length; at += 64) {
    for (let i = 0; i < 16; i++) w[i] = tail.getUint32(at + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15], b = w[i - 2];
      w[i] = w[i - 16] + (rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3)) + w[i - 7] + (rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10));
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    [a, b, c, d, e, f, g, k].forEach((v, i) => { h[i] += v; });
  }
  return Array.from(h, (v) => v.toString(16).padStart(8, "0")).join("");
}

// -- rANS: codec/format/rans.py's decode -------------------------------------------------------

const PROB_BITS = 15, M = 1 << PROB_BITS, LOW = 1 << 16, MAX_STEPS = 1 << 16;

export function ransDecode(payload, n) {
  const bad = (why) => new DecoderError(`rANS payload ${why}`);
  if (payload.length < 2) throw bad("is truncated");
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const lo = payload[0], hi = payload[1];
  let pos = 2 + 2 * (hi - lo + 1);
  if (hi < lo || payload.length < pos + 2) throw bad("has a malformed frequency table");
  const freq = new Uint32Array(256);
  let total = 0;
  for (let s = lo; s <= hi; s++) total += freq[s] = view.getUint16(2 + 2 * (s - lo), true);
  const lanes = view.getUint16(pos, true);
  pos += 2;
  if (n && (total !== M || lanes === 0)) throw bad("has a frequency table that does not sum to its precision");
  if (payload.length < pos + 4 * lanes || (payload.length - pos - 4 * lanes) % 2) throw bad("is truncated");
  const x = new Float64Array(lanes); // states below 2**32: exact in a double, unlike in JS's int32 bit ops
  for (let l = 0; l < lanes; l++) x[l] = view.getUint32(pos + 4 * l, true);
  let word = pos + 4 * lanes;
  const out = new Uint8Array(n);
  if (!n) {
    if (word !== payload.length) throw bad("holds words for no symbols");
    return out;
  }
  if (x.some((v) => v < LOW)) throw bad("has a state out of range");
  const symbolOf = new Uint8Array(M), cum = new Uint32Array(257);
  for (let s = 0, at = 0; s < 256; s++) { cum[s] = at; symbolOf.fill(s, at, at + freq[s]); at += freq[s]; }
  const steps = Math.ceil(n / lanes);
  if (steps > MAX_STEPS) throw bad(`has ${lanes} lanes for ${n} symbols, too few to decode`);
  for (let t = 0, i = 0; t < steps; t++) {
    const k = t === steps - 1 ? n - (steps - 1) * lanes : lanes;
    for (let l = 0; l < k; l++, i++) {
      const slot = x[l] % M, s = symbolOf[slot];
      out[i] = s ^ 0x80;
      let v = freq[s] * Math.floor(x[l] / M) + slot - cum[s];
      if (v < LOW) { // the words lie in the order the decoder reads them: step by step, lanes ascending
        if (word + 2 > payload.length) throw bad("ends before its symbols do");
        v = v * 65536 + view.getUint16(word, true);
        word += 2;
      }
      x[l] = v;
    }
  }
  if (word !== payload.length || x.some((v) => v !== LOW)) throw bad("does not decode cleanly (damaged)");
  return out;
}

// -- the download's spans: codec/format/decoder_file.py ------------------------------------------

const WIRE_MAGIC = [0x4c, 0x43, 0x57, 0x31]; // "LCW1"
const SPAN_ZSTD = 0, SPAN_RANS = 1;

// The safetensors bytes of a download as sent, at most ``expected`` bytes and exactly that many.
export function decoderFile(wire, expected) {
  if (!(expected > 0 && expected <= 1 << 30)) throw new DecoderError(`decoder size ${expected} is out of range`);
  if (!WIRE_MAGIC.every((b, i) => wire[i] === b)) {
    return inflateExact(wire, expected, "the decoder download", DecoderError);
  }
  const view = new DataView(wire.buffer, wire.byteOffset, wire.byteLength);
  const out = new Uint8Array(expected);
  let pos = WIRE_MAGIC.length, filled = 0;
  while (pos < wire.length) {
    if (pos + 9 > wire.length) throw new DecoderError("the decoder download ends inside a span header");
    const kind = wire[pos], raw = view.getUint32(pos + 1, true), coded = view.getUint32(pos + 5, true);
    pos += 9;
    if (pos + coded > wire.length || (kind !== SPAN_ZSTD && kind !== SPAN_RANS)) throw new DecoderError("the decoder download has a malformed span");
    if (raw > expected - filled) throw new DecoderError(`the decoder download holds more than the ${expected} bytes expected`);
    const payload = wire.subarray(pos, pos + coded);
    const span = kind === SPAN_ZSTD ? inflateExact(payload, raw, "a decoder span", DecoderError) : ransDecode(payload, raw);
    out.set(span, filled);
    filled += raw;
    pos += coded;
  }
  if (filled !== expected) throw new DecoderError(`the decoder download holds ${filled} bytes, expected ${expected}`);
  return out;
}

// -- safetensors, and a scene's part: codec/format/decoder_state.py -------------------------------

const BYTES_PER = { I8: 1, F16: 2, F32: 4 };

// name -> {dtype, shape, offset, length} (offsets from the file's start), and the metadata.
export function tensorLayout(bytes, what) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || view.getUint32(4, true) !== 0) throw new DecoderError(`${what}: not a safetensors file`);
  const n = view.getUint32(0, true);
  if (8 + n > bytes.length) throw new DecoderError(`${what}: its header claims ${n} bytes`);
  let entries;
  try { entries = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))); } catch (_) {
    throw new DecoderError(`${what}: its header is not valid JSON`);
  }
  const tensors = {};
  for (const [name, v] of Object.entries(entries)) {
    if (name === "__metadata__") continue;
    const [a, b] = v.data_offsets.map((o) => 8 + n + o);
    const count = v.shape.reduce((p, d) => p * d, 1);
    if (!(v.dtype in BYTES_PER) || !(a <= b && b <= bytes.length) || b - a !== count * BYTES_PER[v.dtype]) {
      throw new DecoderError(`${what}: tensor ${name.slice(0, 60)} is malformed`);
    }
    tensors[name] = { dtype: v.dtype, shape: v.shape, offset: a, length: b - a };
  }
  return { tensors, metadata: entries.__metadata__ || {} };
}

export function verified(bytes, sha256, what) {
  const actual = sha256Hex(bytes);
  if (actual !== sha256) throw new DecoderError(`${what}: sha256 mismatch (expected ${sha256.slice(0, 12)}…, got ${actual.slice(0, 12)}…)`);
  return bytes;
}

const DELTA = ".delta", BASE_KEY = "base_sha256";
const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);

// The scene's decoder file in the base's layout: the base's bytes with the part's tensors in
// place (int8 code differences added, whole tensors replaced), so the base's graph reads it.
export function applyPart(base, baseSha, part, partSha) {
  verified(part, partSha, "decoder part");
  const { tensors: into } = tensorLayout(base, "base decoder");
  const { tensors, metadata } = tensorLayout(part, "decoder part");
  if (metadata[BASE_KEY] !== baseSha) throw new DecoderError("decoder part was made for another base decoder");
  const out = base.slice();
  for (const [key, t] of Object.entries(tensors)) {
    const delta = key.endsWith(DELTA), name = delta ? key.slice(0, -DELTA.length) : key, b = into[name];
    if (!b) throw new DecoderError(`decoder part: the base has no tensor ${name.slice(0, 60)}`);
    if (!sameShape(t.shape, b.shape) || (delta ? t.dtype !== "I8" || b.dtype !== "I8" : t.dtype !== b.dtype)) {
      throw new DecoderError(`decoder part: ${name.slice(0, 60)} does not match the base's shape or type`);
    }
    const src = part.subarray(t.offset, t.offset + t.length);
    if (!delta) { out.set(src, b.offset); continue; }
    const codes = new Int8Array(out.buffer, b.offset, b.length), d = new Int8Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < codes.length; i++) {
      const v = codes[i] + d[i];
      if (v < -127 || v > 127) throw new DecoderError(`decoder part: ${name.slice(0, 60)} leaves the int8 range`);
      codes[i] = v;
    }
  }
  return out;
}

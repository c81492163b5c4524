// XXH3-64 (seed 0, the default secret), as Python's xxhash computes it: the checksum every chunk
// carries (codec/format/container.py chunk_checksum), so the page refuses a damaged chunk as the
// command-line player does instead of drawing wrong pictures. 64-bit lanes are BigInt, kept to
// 64 bits after each operation; a chunk of a few kB hashes in well under a millisecond.
// tests/web/test_web_decoder.py holds it to Python's xxhash bit for bit, over every length path.

const M64 = (1n << 64n) - 1n;
const P32_1 = 0x9E3779B1n, P32_2 = 0x85EBCA77n, P32_3 = 0xC2B2AE3Dn;
const P64_1 = 0x9E3779B185EBCA87n, P64_2 = 0xC2B2AE3D27D4EB4Fn, P64_3 = 0x165667B19E3779F9n;
const P64_4 = 0x85EBCA77C2B2AE63n, P64_5 = 0x27D4EB2F165667C5n;
const MX1 = 0x165667919E3779F9n, MX2 = 0x9FB21C651E98DF25n;

// The algorithm's default secret: 192 bytes fixed by the XXH3 specification.
const SECRET = Uint8Array.from(
  ("b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671fcb79e64eccc0e578825ad07dccff7221" +
   "b8084674f743248ee03590e6813a264c3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8" +
   "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364eac5ac8334d3ebc3c581a0fffa1363eb" +
   "170ddd51b7f0da49d316552629d4689e2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e")
    .match(/../g), (h) => parseInt(h, 16));
const SECRET_VIEW = new DataView(SECRET.buffer);
const STRIPE = 64, STRIPES_PER_BLOCK = (SECRET.length - STRIPE) / 8, BLOCK = STRIPE * STRIPES_PER_BLOCK;

const mul = (a, b) => (a * b) & M64;
const add = (a, b) => (a + b) & M64;
const rotl = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & M64;
const key64 = (at) => SECRET_VIEW.getBigUint64(at, true);
const key32 = (at) => BigInt(SECRET_VIEW.getUint32(at, true));

function fold128(a, b) {  // the 128-bit product's halves xor-ed
  const p = a * b;
  return (p & M64) ^ (p >> 64n);
}

function xxh64Avalanche(h) {
  h = mul(h ^ (h >> 33n), P64_2);
  h = mul(h ^ (h >> 29n), P64_3);
  return h ^ (h >> 32n);
}

function avalanche(h) {
  h = mul(h ^ (h >> 37n), MX1);
  return h ^ (h >> 32n);
}

function rrmxmx(h, len) {
  h ^= rotl(h, 49) ^ rotl(h, 24);
  h = mul(h, MX2);
  h ^= add(h >> 35n, BigInt(len));
  h = mul(h, MX2);
  return h ^ (h >> 28n);
}

function mix16(view, at, secretAt) {
  return fold128(view.getBigUint64(at, true) ^ key64(secretAt), view.getBigUint64(at + 8, true) ^ key64(secretAt + 8));
}

function upTo16(bytes, view) {
  const n = bytes.length;
  if (n > 8) {
    const lo = view.getBigUint64(0, true) ^ (key64(24) ^ key64(32));
    const hi = view.getBigUint64(n - 8, true) ^ (key64(40) ^ key64(48));
    const swapped = new DataView(new ArrayBuffer(8));
    swapped.setBigUint64(0, lo, false);  // byte-swapped lo
    return avalanche(add(add(add(BigInt(n), swapped.getBigUint64(0, true)), hi), fold128(lo, hi)));
  }
  if (n >= 4) {
    const x = BigInt(view.getUint32(n - 4, true)) + (BigInt(view.getUint32(0, true)) << 32n);
    return rrmxmx(x ^ (key64(8) ^ key64(16)), n);
  }
  if (n > 0) {
    const combined = (bytes[0] << 16 | bytes[n >> 1] << 24 | bytes[n - 1] | n << 8) >>> 0;
    return xxh64Avalanche(BigInt(combined) ^ (key32(0) ^ key32(4)));
  }
  return xxh64Avalanche(key64(56) ^ key64(64));
}

function upTo240(view, n) {
  let acc = mul(BigInt(n), P64_1);
  if (n <= 128) {
    const rounds = (n - 1) >> 5;  // pairs of 16-byte reads from each end, 1 to 4
    for (let i = rounds; i >= 0; i--) {
      acc = add(acc, mix16(view, 16 * i, 32 * i));
      acc = add(acc, mix16(view, n - 16 * (i + 1), 32 * i + 16));
    }
    return avalanche(acc);
  }
  for (let i = 0; i < 8; i++) acc = add(acc, mix16(view, 16 * i, 16 * i));
  acc = avalanche(acc);
  for (let i = 8; i < n >> 4; i++) acc = add(acc, mix16(view, 16 * i, 16 * (i - 8) + 3));
  return avalanche(add(acc, mix16(view, n - 16, 136 - 17)));
}

function stripe(acc, view, at, secretAt) {
  for (let i = 0; i < 8; i++) {
    const value = view.getBigUint64(at + 8 * i, true), keyed = value ^ key64(secretAt + 8 * i);
    acc[i ^ 1] = add(acc[i ^ 1], value);
    acc[i] = add(acc[i], (keyed & 0xFFFFFFFFn) * (keyed >> 32n));
  }
}

function long(view, n) {
  const acc = [P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1];
  const blocks = Math.floor((n - 1) / BLOCK);
  for (let b = 0; b < blocks; b++) {
    for (let s = 0; s < STRIPES_PER_BLOCK; s++) stripe(acc, view, b * BLOCK + s * STRIPE, s * 8);
    for (let i = 0; i < 8; i++) {
      const a = acc[i];
      acc[i] = mul(a ^ (a >> 47n) ^ key64(SECRET.length - STRIPE + 8 * i), P32_1);
    }
  }
  const stripes = Math.floor((n - 1 - blocks * BLOCK) / STRIPE);
  for (let s = 0; s < stripes; s++) stripe(acc, view, blocks * BLOCK + s * STRIPE, s * 8);
  stripe(acc, view, n - STRIPE, SECRET.length - STRIPE - 7);
  let h = mul(BigInt(n), P64_1);
  for (let i = 0; i < 4; i++) h = add(h, fold128(acc[2 * i] ^ key64(11 + 16 * i), acc[2 * i + 1] ^ key64(11 + 16 * i + 8)));
  return avalanche(h);
}

/** XXH3-64 of ``bytes`` (seed 0), a BigInt. */
export function xxh3(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), n = bytes.length;
  return n <= 16 ? upTo16(bytes, view) : n <= 240 ? upTo240(view, n) : long(view, n);
}

/** xxh3 as 16 hex digits (what the tests compare with Python's hexdigest). */
export function xxh3Hex(bytes) {
  return xxh3(bytes).toString(16).padStart(16, "0");
}

/** A chunk's checksum: xxh3 over its first frame, frame count and length (u32 each, little
 * endian), then its payload. */
export function chunkChecksum(start, n, payload) {
  const all = new Uint8Array(12 + payload.length), head = new DataView(all.buffer);
  head.setUint32(0, start, true);
  head.setUint32(4, n, true);
  head.setUint32(8, payload.length, true);
  all.set(payload, 12);
  return xxh3(all);
}

/** Whether ``text``, a checksum as the server sends it (decimal), is the chunk's. */
export function checksumMatches(start, n, payload, text) {
  return /^\d{1,20}$/.test(text || "") && Number.isInteger(start) && Number.isInteger(n) &&
    chunkChecksum(start, n, payload) === BigInt(text);
}

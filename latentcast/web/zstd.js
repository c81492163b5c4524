// zstd for bytes the page did not make: codec/format/compress.py's decompress_exact, in the page.
//
// fzstd allocates what a frame's header declares (its content size, or else its window, up to
// 2 GB) before it decodes a byte. A damaged or hostile server could so make the page claim
// gigabytes for a payload that should inflate to a few kB. So the frames' headers and block
// headers are walked first, without decoding: every frame must declare its content size, the
// sizes must add up to exactly what the caller expects, and the frames must end where the
// payload ends. Only then does fzstd run, and what it returns is checked again.

import { decompress } from "/web/vendor/fzstd.mjs";

const MAGIC = 0xfd2fb528;
const BLOCK_MAX = 1 << 17; // the format's largest block

// Where the frame at ``at`` ends, and the content size it declares; throws on anything our
// writer (python-zstandard, content size always written, no dictionary) never makes.
function frameExtent(p, at) {
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  if (at + 6 > p.length || view.getUint32(at, true) !== MAGIC) throw new Error("is not a zstd frame");
  const flags = p[at + 4];
  const fcsFlag = flags >> 6, single = (flags >> 5) & 1, checksum = (flags >> 2) & 1, dict = flags & 3;
  if (flags & 8) throw new Error("has a reserved bit set");
  if (dict) throw new Error("needs a dictionary");
  let pos = at + 5 + (single ? 0 : 1);
  const fcsBytes = fcsFlag ? 1 << fcsFlag : single;
  if (!fcsBytes) throw new Error("declares no content size");
  if (pos + fcsBytes > p.length) throw new Error("ends inside its frame header");
  let size;
  if (fcsBytes === 1) size = p[pos];
  else if (fcsBytes === 2) size = view.getUint16(pos, true) + 256;
  else if (fcsBytes === 4) size = view.getUint32(pos, true);
  else size = view.getUint32(pos, true) + 2 ** 32 * view.getUint32(pos + 4, true);
  // Zero declared without a single segment would have fzstd allocate the window instead.
  if (size === 0 && !single) throw new Error("declares no content size");
  pos += fcsBytes;
  for (let last = 0; !last;) {
    if (pos + 3 > p.length) throw new Error("ends inside a block header");
    const header = p[pos] | (p[pos + 1] << 8) | (p[pos + 2] << 16);
    const type = (header >> 1) & 3, length = header >>> 3;
    last = header & 1;
    if (type === 3 || length > BLOCK_MAX) throw new Error("has a malformed block");
    pos += 3 + (type === 1 ? 1 : length);
  }
  pos += checksum ? 4 : 0;
  if (pos > p.length) throw new Error("ends inside a frame");
  return { end: pos, size };
}

function inflate(payload, size) {
  let declared = 0;
  for (let at = 0; at < payload.length;) {
    const frame = frameExtent(payload, at);
    declared += frame.size;
    if (declared > size) throw new Error(`declares more than ${size} bytes`);
    at = frame.end;
  }
  if (declared !== size) throw new Error(`declares ${declared} bytes, expected ${size}`);
  let raw;
  try { raw = decompress(payload); } catch (e) { throw new Error(`does not decompress (${e.message})`); }
  if (raw.length !== size) throw new Error(`holds ${raw.length} bytes, expected ${size}`);
  return raw;
}

// ``payload`` (one zstd frame, or several back to back) inflated to exactly ``size`` bytes;
// otherwise an ``ErrorType`` (the caller's own class) whose message names ``what`` and why.
export function inflateExact(payload, size, what, ErrorType = Error) {
  try { return inflate(payload, size); } catch (e) { throw new ErrorType(`${what} ${e.message}`); }
}

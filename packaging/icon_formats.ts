/**
 * Icon containers written from PNGs, in plain TypeScript, so packaging needs no image tools:
 * macOS `.icns` (PNG entries, readable since OS X 10.7/10.8) and Windows `.ico` (PNG-embedded
 * images, readable since Vista). Each writer has a reader beside it, which the tests use to check
 * the structure and which says in one sentence what is wrong with a file.
 */

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width and height from a PNG's IHDR chunk; throws when the bytes are not a PNG. */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  if (png.length < 24 || PNG_SIGNATURE.some((b, i) => png[i] !== b)) {
    throw new Error("Not a PNG: the 8-byte PNG signature is missing.");
  }
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  if (String.fromCharCode(...png.subarray(12, 16)) !== "IHDR") {
    throw new Error("Not a valid PNG: the first chunk is not IHDR.");
  }
  return { width: v.getUint32(16), height: v.getUint32(20) };
}

/**
 * The PNG-based `.icns` element types and the pixel size each holds (the @2x types hold the
 * doubled size of their point size).
 */
export const ICNS_TYPES = {
  ic11: 32, // 16 pt @2x
  ic12: 64, // 32 pt @2x
  ic07: 128,
  ic13: 256, // 128 pt @2x
  ic08: 256,
  ic14: 512, // 256 pt @2x
  ic09: 512,
  ic10: 1024, // 512 pt @2x
} as const;
export type IcnsType = keyof typeof ICNS_TYPES;

/** The sizes a Windows `.ico` carries; 256 is written as 0 in its directory. */
export const ICO_SIZES = [16, 24, 32, 48, 64, 128, 256] as const;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * An `.icns` file: "icns", the file's length (big-endian), then one element per entry: its
 * four-character type, its length including this 8-byte header, and the PNG.
 */
export function writeIcns(entries: { type: IcnsType; png: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const { type, png } of entries) {
    const { width, height } = pngSize(png);
    const want = ICNS_TYPES[type];
    if (width !== want || height !== want) {
      throw new Error(`The ${type} icon must be ${want}x${want} pixels, not ${width}x${height}.`);
    }
    const head = new Uint8Array(8);
    head.set(new TextEncoder().encode(type));
    new DataView(head.buffer).setUint32(4, 8 + png.length);
    parts.push(head, png);
  }
  const body = concat(parts);
  const head = new Uint8Array(8);
  head.set(new TextEncoder().encode("icns"));
  new DataView(head.buffer).setUint32(4, 8 + body.length);
  return concat([head, body]);
}

/** The elements of an `.icns` file; throws with a sentence when its structure is wrong. */
export function readIcns(file: Uint8Array): { type: string; png: Uint8Array }[] {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < 8 || String.fromCharCode(...file.subarray(0, 4)) !== "icns") {
    throw new Error('Not an .icns file: it does not start with "icns".');
  }
  if (v.getUint32(4) !== file.length) {
    throw new Error(`The .icns header says ${v.getUint32(4)} bytes, the file has ${file.length}.`);
  }
  const out: { type: string; png: Uint8Array }[] = [];
  for (let at = 8; at < file.length;) {
    const type = String.fromCharCode(...file.subarray(at, at + 4));
    const len = at + 8 <= file.length ? v.getUint32(at + 4) : 0;
    if (len < 8 || at + len > file.length) {
      throw new Error(`The .icns element ${type} at byte ${at} runs past the end of the file.`);
    }
    out.push({ type, png: file.subarray(at + 8, at + len) });
    at += len;
  }
  return out;
}

/**
 * An `.ico` file: ICONDIR (reserved 0, type 1, count), one 16-byte ICONDIRENTRY per image
 * (width, height — 0 meaning 256 —, colours 0, reserved 0, planes 1, 32 bits per pixel, the
 * image's length and offset; little-endian), then the PNGs in order, each square.
 */
export function writeIco(pngs: Uint8Array[]): Uint8Array {
  const dir = new Uint8Array(6 + 16 * pngs.length);
  const v = new DataView(dir.buffer);
  v.setUint16(0, 0, true);
  v.setUint16(2, 1, true);
  v.setUint16(4, pngs.length, true);
  let offset = dir.length;
  pngs.forEach((png, i) => {
    const { width, height } = pngSize(png);
    if (width !== height || width > 256) {
      throw new Error(`An .ico image must be square and at most 256 px, not ${width}x${height}.`);
    }
    const e = 6 + 16 * i;
    dir[e] = width === 256 ? 0 : width;
    dir[e + 1] = height === 256 ? 0 : height;
    v.setUint16(e + 4, 1, true);
    v.setUint16(e + 6, 32, true);
    v.setUint32(e + 8, png.length, true);
    v.setUint32(e + 12, offset, true);
    offset += png.length;
  });
  return concat([dir, ...pngs]);
}

/** The images of an `.ico` file with their directory fields; throws with a sentence when wrong. */
export function readIco(
  file: Uint8Array,
): { width: number; height: number; planes: number; bitCount: number; png: Uint8Array }[] {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < 6 || v.getUint16(0, true) !== 0 || v.getUint16(2, true) !== 1) {
    throw new Error("Not an .ico file: its header is not reserved 0, type 1.");
  }
  const count = v.getUint16(4, true);
  if (file.length < 6 + 16 * count) {
    throw new Error(`The .ico directory of ${count} images runs past the end of the file.`);
  }
  return Array.from({ length: count }, (_, i) => {
    const e = 6 + 16 * i;
    const size = v.getUint32(e + 8, true), offset = v.getUint32(e + 12, true);
    if (offset + size > file.length) {
      throw new Error(`The .ico image ${i + 1} runs past the end of the file.`);
    }
    return {
      width: file[e] || 256,
      height: file[e + 1] || 256,
      planes: v.getUint16(e + 4, true),
      bitCount: v.getUint16(e + 6, true),
      png: file.subarray(offset, offset + size),
    };
  });
}

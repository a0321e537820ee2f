/**
 * What two swarm members say to each other on their data channel (one reliable, ordered
 * channel per pair; the server never sees any of it).
 *
 * Text frames are JSON control messages ({@link WireText}):
 * - `files`: the files I offer (my shared ones and the ones I fetched, wholly or partly,
 *   while they are enabled here), each with the chunks I hold as a bitfield (base64, bit i
 *   is bit `7 - i % 8` of byte `i >> 3`). The whole list, sent when the channel opens and
 *   whenever the list changes.
 * - `have`: I just verified one more chunk of a file I offer.
 * - `getManifest` / `manifest`: ask for / send a file's manifest (hashes in base64).
 * - `get`: send me chunk `index` of `file`. `cancel`: I no longer need it.
 * - `nope`: I don't have (or won't send) chunk `index` of `file`; without an index, its
 *   manifest.
 *
 * Binary frames are chunks ({@link ChunkFrame}): one byte {@link CHUNK_MAGIC} (magic and
 * version), the file id as 32 raw bytes, the chunk index as an unsigned 32-bit big-endian
 * integer, then the chunk (at most {@link CHUNK_BYTES}).
 *
 * {@link decodeWire} checks every field's type and bounds, refuses unknown fields and caps a
 * text frame at {@link MAX_TEXT_BYTES}; it never throws. Pure: runs unchanged in a page.
 */
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import {
  CHUNK_BYTES,
  HASH_BYTES,
  MAX_CHUNKS,
  MAX_FILE_BYTES,
  MAX_FILE_NAME_LENGTH,
} from "./manifest.ts";
import { MAX_MEMBERS, MAX_SHARED_FILES } from "./protocol.ts";
import { type Check, fail, hex64, int, obj, SchemaError, str } from "./schema.ts";

/** First byte of a chunk frame: magic nibble 0xA, wire version 1. */
export const CHUNK_MAGIC = 0xa1;
export const CHUNK_HEADER_BYTES = 1 + 32 + 4;
/** Largest text frame (UTF-8 bytes): a manifest of {@link MAX_CHUNKS} chunks fits twice over. */
export const MAX_TEXT_BYTES = 128 * 1024;
/** Most entries in a `files` list: every file a full swarm can share. */
export const MAX_OFFERS = MAX_SHARED_FILES * MAX_MEMBERS;

export interface FileOffer {
  /** The file id (manifest SHA-256, lowercase hex). */
  id: string;
  name: string;
  sizeBytes: number;
  /** Chunk count: ceil(sizeBytes / CHUNK_BYTES). */
  chunks: number;
  /** Base64 bitfield of the chunks held, ceil(chunks / 8) bytes. */
  have: string;
}

export type WireText =
  | { type: "files"; files: FileOffer[] }
  | { type: "have"; file: string; index: number }
  | { type: "getManifest"; file: string }
  | {
    type: "manifest";
    file: string;
    name: string;
    sizeBytes: number;
    chunkBytes: number;
    /** Base64 of 32 bytes per chunk. */
    hashes: string;
  }
  | { type: "get"; file: string; index: number }
  | { type: "cancel"; file: string; index: number }
  | { type: "nope"; file: string; index?: number };

export interface ChunkFrame {
  type: "chunk";
  file: string;
  index: number;
  /** A view into the received frame. */
  bytes: Uint8Array;
}

export type WireMessage = WireText | ChunkFrame;

export type Decoded = { ok: true; message: WireMessage } | { ok: false; reason: string };

// ---------------------------------------------------------------- base64 and bitfields

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x2000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x2000));
  }
  return btoa(s);
}

/** The bytes of strict base64, or null. */
export function base64ToBytes(text: string): Uint8Array | null {
  if (typeof text !== "string" || !B64.test(text)) return null;
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function bitfieldBytes(chunks: number): number {
  return Math.ceil(chunks / 8);
}

export function getBit(field: Uint8Array, i: number): boolean {
  return (field[i >> 3] & (0x80 >> (i & 7))) !== 0;
}

export function setBit(field: Uint8Array, i: number, on = true): void {
  if (on) field[i >> 3] |= 0x80 >> (i & 7);
  else field[i >> 3] &= ~(0x80 >> (i & 7));
}

/** A `have` bitfield of `chunks` chunks from base64 (spare bits cleared), or null. */
export function decodeBitfield(text: string, chunks: number): Uint8Array | null {
  const bytes = base64ToBytes(text);
  if (!bytes || bytes.length !== bitfieldBytes(chunks)) return null;
  if (chunks % 8) bytes[bytes.length - 1] &= 0xff << (8 - (chunks % 8));
  return bytes;
}

// ---------------------------------------------------------------- validation

class WireError extends Error {}

const fileId = hex64;
const index = int(0, MAX_CHUNKS - 1);
const name = str(MAX_FILE_NAME_LENGTH, /\S/);
const size = int(1, MAX_FILE_BYTES);
const b64 = (max: number): Check => str(max, B64);

const offer: Check = (v, p) => {
  obj({
    id: fileId,
    name,
    sizeBytes: size,
    chunks: int(1, MAX_CHUNKS),
    have: b64(Math.ceil(bitfieldBytes(MAX_CHUNKS) / 3) * 4),
  })(v, p);
  const o = v as FileOffer;
  if (o.chunks !== Math.ceil(o.sizeBytes / CHUNK_BYTES)) fail(p, "has a wrong chunk count");
  if (!decodeBitfield(o.have, o.chunks)) fail(`${p}.have`, "does not fit the chunk count");
};

const checks: Record<WireText["type"], Check> = {
  files: (v, p) => {
    obj({
      type: str(12),
      files: (l, lp) => {
        if (!Array.isArray(l)) fail(lp, "must be a list");
        if ((l as unknown[]).length > MAX_OFFERS) fail(lp, `has more than ${MAX_OFFERS} entries`);
        const seen = new Set<string>();
        (l as unknown[]).forEach((x, i) => {
          offer(x, `${lp}[${i}]`);
          const id = (x as FileOffer).id;
          if (seen.has(id)) fail(`${lp}[${i}]`, "repeats a file");
          seen.add(id);
        });
      },
    })(v, p);
  },
  have: obj({ type: str(12), file: fileId, index }),
  getManifest: obj({ type: str(12), file: fileId }),
  manifest: (v, p) => {
    obj({
      type: str(12),
      file: fileId,
      name,
      sizeBytes: size,
      chunkBytes: int(CHUNK_BYTES, CHUNK_BYTES),
      hashes: b64(Math.ceil((MAX_CHUNKS * HASH_BYTES) / 3) * 4),
    })(v, p);
    const m = v as Extract<WireText, { type: "manifest" }>;
    const expect = Math.ceil(m.sizeBytes / m.chunkBytes) * HASH_BYTES;
    if (Math.ceil(expect / 3) * 4 !== m.hashes.length) fail(`${p}.hashes`, "has the wrong length");
  },
  get: obj({ type: str(12), file: fileId, index }),
  cancel: obj({ type: str(12), file: fileId, index }),
  nope: obj({ type: str(12), file: fileId, "index?": index }),
};

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).byteLength;
}

function decodeText(frame: string): WireText {
  // A string's UTF-8 length is at least its length: a cheap first bound before encoding.
  if (frame.length > MAX_TEXT_BYTES || utf8Length(frame) > MAX_TEXT_BYTES) {
    throw new WireError(`text frame exceeds ${MAX_TEXT_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    throw new WireError("text frame is not valid JSON");
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !Object.hasOwn(checks, type)) {
    throw new WireError(`unknown message type ${JSON.stringify(type)?.slice(0, 30)}`);
  }
  checks[type as WireText["type"]](value, type);
  return value as WireText;
}

function decodeChunk(bytes: Uint8Array): ChunkFrame {
  if (bytes.byteLength <= CHUNK_HEADER_BYTES) throw new WireError("chunk frame too short");
  if (bytes.byteLength > CHUNK_HEADER_BYTES + CHUNK_BYTES) {
    throw new WireError(`chunk frame of ${bytes.byteLength} bytes is too long`);
  }
  if (bytes[0] !== CHUNK_MAGIC) throw new WireError(`binary frame starts with ${bytes[0]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const index = view.getUint32(33);
  if (index >= MAX_CHUNKS) throw new WireError(`chunk index ${index} is out of range`);
  return {
    type: "chunk",
    file: bytesToHex(bytes.subarray(1, 33)),
    index,
    bytes: bytes.subarray(CHUNK_HEADER_BYTES),
  };
}

/**
 * A received frame as a message, or why it was refused. Accepts what a data channel's
 * `message` event carries (string, ArrayBuffer, or a byte view); never throws.
 */
export function decodeWire(data: unknown): Decoded {
  try {
    if (typeof data === "string") return { ok: true, message: decodeText(data) };
    if (
      data instanceof ArrayBuffer || Object.prototype.toString.call(data) === "[object ArrayBuffer]"
    ) {
      return { ok: true, message: decodeChunk(new Uint8Array(data as ArrayBuffer)) };
    }
    if (ArrayBuffer.isView(data)) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return { ok: true, message: decodeChunk(bytes) };
    }
    return { ok: false, reason: `unsupported frame type ${Object.prototype.toString.call(data)}` };
  } catch (e) {
    return {
      ok: false,
      reason: e instanceof WireError || e instanceof SchemaError ? e.message : `bad frame (${e})`,
    };
  }
}

/** A control message as a text frame; throws when it would exceed {@link MAX_TEXT_BYTES}. */
export function encodeText(m: WireText): string {
  const text = JSON.stringify(m);
  if (utf8Length(text) > MAX_TEXT_BYTES) {
    throw new RangeError(`refusing to send a ${m.type} message of ${text.length} characters`);
  }
  return text;
}

/** A chunk as a binary frame. */
export function encodeChunk(
  file: string,
  index: number,
  bytes: Uint8Array,
): Uint8Array<ArrayBuffer> {
  if (!/^[0-9a-f]{64}$/.test(file)) throw new RangeError("malformed file id");
  if (!Number.isInteger(index) || index < 0 || index >= MAX_CHUNKS) {
    throw new RangeError(`chunk index ${index} is out of range`);
  }
  if (bytes.byteLength < 1 || bytes.byteLength > CHUNK_BYTES) {
    throw new RangeError(`chunk of ${bytes.byteLength} bytes`);
  }
  const out = new Uint8Array(CHUNK_HEADER_BYTES + bytes.byteLength);
  out[0] = CHUNK_MAGIC;
  out.set(hexToBytes(file), 1);
  new DataView(out.buffer).setUint32(33, index);
  out.set(bytes, CHUNK_HEADER_BYTES);
  return out;
}

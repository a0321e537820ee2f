/**
 * A swarm file's manifest: its size, its chunk size and the SHA-256 of every chunk. The file's
 * id is the SHA-256 of a canonical encoding of those three (see {@link manifestId}), not of its
 * name: the same bytes shared under two names are one file, and the name travels beside the id.
 * A member that holds a manifest whose id it checked can check every chunk it receives on its
 * own, whoever sent it. Pure TypeScript (`@noble/hashes`): runs unchanged in a page.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

/** Bytes per chunk (the last chunk of a file may be shorter). */
export const CHUNK_BYTES = 64 * 1024;
/** Largest file a swarm shares. */
export const MAX_FILE_BYTES = 50 * 1024 * 1024;
/** Most chunks a file has. */
export const MAX_CHUNKS = Math.ceil(MAX_FILE_BYTES / CHUNK_BYTES);
/** Longest file name (UTF-16 code units) a manifest or an offer carries. */
export const MAX_FILE_NAME_LENGTH = 200;
/** Bytes of one chunk hash. */
export const HASH_BYTES = 32;

export interface Manifest {
  /** SHA-256 (lowercase hex) of the canonical encoding of sizeBytes, chunkBytes and hashes. */
  id: string;
  /** The name it was shared under; not covered by the id. */
  name: string;
  sizeBytes: number;
  chunkBytes: number;
  /** {@link HASH_BYTES} per chunk, in chunk order. */
  hashes: Uint8Array;
}

/** Thrown with a sentence a person can read: the file cannot be shared. */
export class ManifestError extends Error {
  override name = "ManifestError";
}

const MiB = 1024 * 1024;
const DOMAIN = new TextEncoder().encode("PhaseLock swarm manifest v1\n");

/** Why a file of this size cannot be shared, as a sentence, or null when it can. */
export function sizeProblem(sizeBytes: number, name = "That file"): string | null {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) return `${name} has no valid size.`;
  if (sizeBytes === 0) return `${name} is empty.`;
  if (sizeBytes > MAX_FILE_BYTES) {
    return `${name} is ${(sizeBytes / MiB).toFixed(1)} MB; a swarm shares files of up to ${
      MAX_FILE_BYTES / MiB
    } MB.`;
  }
  return null;
}

/**
 * A name fit to show and to send: control characters dropped, trimmed, at most
 * {@link MAX_FILE_NAME_LENGTH} code units (the extension kept when it is short, no surrogate
 * pair cut in half); "Untitled" when nothing is left.
 */
export function cleanFileName(name: string): string {
  // deno-lint-ignore no-control-regex
  let s = String(name).replace(/[\u0000-\u001f\u007f-\u009f]/g, "").trim();
  if (s.length > MAX_FILE_NAME_LENGTH) {
    const dot = s.lastIndexOf(".");
    const ext = dot > 0 && s.length - dot <= 10 ? s.slice(dot) : "";
    let head = s.slice(0, MAX_FILE_NAME_LENGTH - ext.length - 1);
    if (/[\ud800-\udbff]$/.test(head)) head = head.slice(0, -1);
    s = `${head}…${ext}`;
  }
  return s || "Untitled";
}

/** Chunks a file of `sizeBytes` has with chunks of `chunkBytes`. */
export function chunkCount(m: { sizeBytes: number; chunkBytes: number }): number {
  return Math.ceil(m.sizeBytes / m.chunkBytes);
}

/** Byte range [start, end) of chunk `index`; throws for an index outside the file. */
export function chunkRange(
  m: { sizeBytes: number; chunkBytes: number },
  index: number,
): { start: number; end: number } {
  if (!Number.isInteger(index) || index < 0 || index >= chunkCount(m)) {
    throw new RangeError(`chunk ${index} is outside the file`);
  }
  const start = index * m.chunkBytes;
  return { start, end: Math.min(start + m.chunkBytes, m.sizeBytes) };
}

/**
 * The file id: SHA-256 over "PhaseLock swarm manifest v1\n", sizeBytes as an unsigned 64-bit
 * big-endian integer, chunkBytes as an unsigned 32-bit big-endian integer, then the hashes.
 */
export function manifestId(sizeBytes: number, chunkBytes: number, hashes: Uint8Array): string {
  const head = new Uint8Array(DOMAIN.length + 12);
  head.set(DOMAIN);
  const view = new DataView(head.buffer, DOMAIN.length);
  view.setUint32(0, Math.floor(sizeBytes / 2 ** 32));
  view.setUint32(4, sizeBytes >>> 0);
  view.setUint32(8, chunkBytes);
  const h = sha256.create();
  h.update(head);
  h.update(hashes);
  return bytesToHex(h.digest());
}

/**
 * Hashes `bytes` into a manifest. Throws a {@link ManifestError} with a sentence for an empty
 * file or one over {@link MAX_FILE_BYTES}; the name is cleaned ({@link cleanFileName}).
 */
export function makeManifest(name: string, bytes: Uint8Array): Manifest {
  const clean = cleanFileName(name);
  const problem = sizeProblem(bytes.byteLength, `“${clean}”`);
  if (problem) throw new ManifestError(problem);
  const sizeBytes = bytes.byteLength;
  const chunkBytes = CHUNK_BYTES;
  const count = chunkCount({ sizeBytes, chunkBytes });
  const hashes = new Uint8Array(count * HASH_BYTES);
  for (let i = 0; i < count; i++) {
    const start = i * chunkBytes;
    hashes.set(sha256(bytes.subarray(start, Math.min(start + chunkBytes, sizeBytes))), i * 32);
  }
  return {
    id: manifestId(sizeBytes, chunkBytes, hashes),
    name: clean,
    sizeBytes,
    chunkBytes,
    hashes,
  };
}

/** Why a manifest is not well formed or its id does not match its content, or null. */
export function manifestProblem(m: Manifest): string | null {
  if (typeof m !== "object" || m === null) return "not a manifest";
  if (typeof m.id !== "string" || !/^[0-9a-f]{64}$/.test(m.id)) return "malformed id";
  if (typeof m.name !== "string" || m.name.length > MAX_FILE_NAME_LENGTH) return "bad name";
  if (sizeProblem(m.sizeBytes)) return `bad size ${m.sizeBytes}`;
  if (m.chunkBytes !== CHUNK_BYTES) return `chunk size ${m.chunkBytes}, not ${CHUNK_BYTES}`;
  if (!(m.hashes instanceof Uint8Array)) return "no hashes";
  if (m.hashes.byteLength !== chunkCount(m) * HASH_BYTES) {
    return `${m.hashes.byteLength} bytes of hashes for ${chunkCount(m)} chunks`;
  }
  if (manifestId(m.sizeBytes, m.chunkBytes, m.hashes) !== m.id) return "id does not match";
  return null;
}

/** The manifest is well formed and its id is the hash of its content. */
export function verifyManifest(m: Manifest): boolean {
  return manifestProblem(m) === null;
}

/** `bytes` are chunk `index` of the manifest's file: right length, right SHA-256. */
export function verifyChunk(m: Manifest, index: number, bytes: Uint8Array): boolean {
  if (!Number.isInteger(index) || index < 0 || index >= chunkCount(m)) return false;
  const { start, end } = chunkRange(m, index);
  if (bytes.byteLength !== end - start) return false;
  const got = sha256(bytes);
  const off = index * HASH_BYTES;
  let diff = 0;
  for (let k = 0; k < HASH_BYTES; k++) diff |= got[k] ^ m.hashes[off + k];
  return diff === 0;
}

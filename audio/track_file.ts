/**
 * Reading a track the user chose: the file itself (with a sentence for every way it can be
 * wrong) and its tags. Tags come from `music-metadata`; a file without them is titled by its
 * name, and a broken tag never makes a playable file unusable.
 */
import { parseBuffer } from "music-metadata";
import { MAX_FILE_BYTES } from "./mp3_scan.ts";

/** Cover pictures larger than this are left out (they would be sent to every device). */
export const MAX_COVER_BYTES = 1024 * 1024;
const COVER_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/** A file that cannot be used: `message` is `Cannot use "name": why`. */
export class TrackFileError extends Error {
  override name = "TrackFileError";
  constructor(readonly fileName: string, readonly why: string) {
    super(`Cannot use "${fileName}": ${why}`);
  }
}

export function baseName(path: string): string {
  return path.split(/[\\/]/).pop() || path;
}

/** Reads a whole track file; throws {@link TrackFileError}: `Cannot use "name": why`. */
export async function readTrackFile(
  path: string,
): Promise<{ fileName: string; bytes: Uint8Array<ArrayBuffer> }> {
  const fileName = baseName(path);
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) throw new Error("it is not a file");
    if (st.size > MAX_FILE_BYTES) throw new Error(tooBig(st.size));
    return { fileName, bytes: await Deno.readFile(path) };
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "the file does not exist"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission to read it was denied"
      : (e as Error).message;
    throw new TrackFileError(fileName, why);
  }
}

export function tooBig(sizeBytes: number): string {
  return `the file is ${(sizeBytes / 1048576).toFixed(1)} MB; the limit is ${
    MAX_FILE_BYTES / 1048576
  } MB`;
}

export interface TrackTags {
  title: string;
  artist: string;
  album: string;
  cover: { mime: string; bytes: Uint8Array } | null;
}

/** Tag text for display: control characters become spaces, at most 255 characters. */
const clip = (s: string | undefined) =>
  [...(s ?? "")].map((ch) => (ch < " " ? " " : ch)).join("").trim().slice(0, 255);

/** Title, artist, album and cover picture from the file's tags; title falls back to the name. */
export async function readTags(bytes: Uint8Array, fileName: string): Promise<TrackTags> {
  const fallback = clip(fileName.replace(/\.mp3$/i, "")) || fileName.slice(0, 255);
  try {
    const { common } = await parseBuffer(bytes, { mimeType: "audio/mpeg", size: bytes.length }, {
      duration: false,
      skipCovers: false,
    });
    const pic = common.picture?.find((p) =>
      COVER_TYPES.includes(p.format.toLowerCase()) && p.data.length <= MAX_COVER_BYTES
    );
    return {
      title: clip(common.title) || fallback,
      artist: clip(common.artist),
      album: clip(common.album),
      cover: pic ? { mime: pic.format.toLowerCase(), bytes: pic.data } : null,
    };
  } catch {
    return { title: fallback, artist: "", album: "", cover: null };
  }
}

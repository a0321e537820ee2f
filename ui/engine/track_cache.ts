/// <reference lib="dom" />
/**
 * Tracks a page has downloaded, kept in IndexedDB (it works on plain-http pages, unlike the
 * Cache API) so that reopening the page, or the same song queued again, needs no download.
 * Keyed by SHA-256; the bytes are verified again when read. Bounded: the least recently used
 * tracks go first. Where IndexedDB is missing or refuses (private windows), nothing is kept and
 * nothing fails.
 */
import { sha256Hex } from "./hash.ts";

const DB = "phaselock";
const STORE = "tracks";
/** Most bytes kept (a phone's storage is not ours to fill). */
export const CACHE_MAX_BYTES = 150 * 1024 * 1024;

interface Entry {
  id: string;
  blob: Blob;
  size: number;
  usedMs: number;
}

export class TrackCache {
  #db: Promise<IDBDatabase | null> | null = null;

  #open(): Promise<IDBDatabase | null> {
    return this.#db ??= new Promise((resolve) => {
      try {
        const req = indexedDB.open(DB, 1);
        req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => resolve(null);
        req.onblocked = () => resolve(null);
      } catch {
        resolve(null);
      }
    });
  }

  async #run<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>) {
    const db = await this.#open();
    if (!db) return undefined;
    return new Promise<T | undefined>((resolve) => {
      try {
        const req = fn(db.transaction(STORE, mode).objectStore(STORE));
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => resolve(undefined);
      } catch {
        resolve(undefined);
      }
    });
  }

  /** The track's bytes if kept and still intact, else null. */
  async get(id: string): Promise<Uint8Array<ArrayBuffer> | null> {
    const e = await this.#run<Entry>("readonly", (s) => s.get(id));
    if (!e) return null;
    const bytes = new Uint8Array(await e.blob.arrayBuffer());
    if (sha256Hex(bytes) !== id) {
      await this.#run("readwrite", (s) => s.delete(id));
      return null;
    }
    await this.#run("readwrite", (s) => s.put({ ...e, usedMs: Date.now() }));
    return bytes;
  }

  /** Keeps verified bytes; drops the least recently used tracks beyond the limit. */
  async put(id: string, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    if (bytes.length > CACHE_MAX_BYTES) return;
    const entry: Entry = { id, blob: new Blob([bytes]), size: bytes.length, usedMs: Date.now() };
    await this.#run("readwrite", (s) => s.put(entry));
    const all = (await this.#run<Entry[]>("readonly", (s) => s.getAll())) ?? [];
    let total = all.reduce((n, e) => n + e.size, 0);
    for (const e of all.sort((a, b) => a.usedMs - b.usedMs)) {
      if (total <= CACHE_MAX_BYTES) break;
      await this.#run("readwrite", (s) => s.delete(e.id));
      total -= e.size;
    }
  }
}

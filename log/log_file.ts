/**
 * The machine's log: one JSON object per line, buffered in memory and written every
 * `flushEvery` entries and on close. The file never grows past `maxBytes`: when a write would
 * pass the cap, whole entries are dropped from the start (oldest first) until the file is back
 * to `keepFraction` of the cap, so the rewrite happens rarely rather than on every flush.
 * Several processes may share one file: each write holds an exclusive lock on it.
 */

export const DEFAULT_LOG_MAX_BYTES = 20 * 1024 * 1024;

export interface LogFileOptions {
  maxBytes?: number;
  flushEvery?: number;
  /** After trimming, the file holds at most this fraction of the cap (default 0.75). */
  keepFraction?: number;
  /** Added to every entry (e.g. the role and pid of the process). */
  context?: Record<string, unknown>;
}

export class LogFile {
  readonly maxBytes: number;
  readonly flushEvery: number;
  readonly #keep: number;
  readonly #context: Record<string, unknown>;
  #buffer: string[] = [];
  #writing: Promise<void> = Promise.resolve();
  /** The first write failure, reported once; logging then stops quietly. */
  failure: Error | null = null;

  constructor(readonly path: string, opts: LogFileOptions = {}) {
    this.maxBytes = Math.max(256, opts.maxBytes ?? DEFAULT_LOG_MAX_BYTES);
    this.flushEvery = Math.max(1, opts.flushEvery ?? 50);
    this.#keep = Math.floor(this.maxBytes * (opts.keepFraction ?? 0.75));
    this.#context = opts.context ?? {};
  }

  /** Buffers one entry; every `flushEvery` entries the buffer is written out. */
  write(entry: Record<string, unknown>): void {
    if (this.failure) return;
    let line = JSON.stringify({ t: new Date().toISOString(), ...this.#context, ...entry });
    // One entry may never be larger than what a trim keeps.
    const room = Math.floor(this.#keep / 2);
    if (line.length > room) {
      line = JSON.stringify({ t: new Date().toISOString(), truncated: line.slice(0, room - 80) });
    }
    this.#buffer.push(line + "\n");
    if (this.#buffer.length >= this.flushEvery) void this.flush();
  }

  /** Writes out whatever is buffered; resolves when it is on disk. */
  flush(): Promise<void> {
    const lines = this.#buffer.splice(0);
    if (lines.length) {
      this.#writing = this.#writing.then(() => this.#append(lines)).catch((e) => {
        this.failure ??= e as Error;
      });
    }
    return this.#writing;
  }

  async close(): Promise<void> {
    await this.flush();
  }

  async #append(lines: string[]): Promise<void> {
    const enc = new TextEncoder();
    const chunk = enc.encode(lines.join(""));
    const dir = this.path.replace(/[\\/][^\\/]*$/, "");
    if (dir && dir !== this.path) await Deno.mkdir(dir, { recursive: true });
    // Owner-only: the log records what the user did and with whom.
    const file = await Deno.open(this.path, { read: true, write: true, create: true, mode: 0o600 });
    try {
      await file.lock(true);
      const size = (await file.stat()).size;
      if (size + chunk.length <= this.maxBytes) {
        await file.seek(0, Deno.SeekMode.End);
        await writeAll(file, chunk);
        return;
      }
      const old = new Uint8Array(size);
      await file.seek(0, Deno.SeekMode.Start);
      let got = 0;
      while (got < size) {
        const n = await file.read(old.subarray(got));
        if (n === null) break;
        got += n;
      }
      const all = new Uint8Array(got + chunk.length);
      all.set(old.subarray(0, got));
      all.set(chunk, got);
      const kept = all.subarray(trimStart(all, this.#keep));
      await file.truncate(0);
      await file.seek(0, Deno.SeekMode.Start);
      await writeAll(file, kept);
    } finally {
      file.close(); // closing releases the lock
    }
  }
}

/** Index of the first whole line such that the rest is at most `keep` bytes. */
export function trimStart(bytes: Uint8Array, keep: number): number {
  if (bytes.length <= keep) return 0;
  let at = bytes.length - keep;
  // Move forward to the start of the next line, so no entry is cut in half.
  if (bytes[at - 1] !== 0x0a) {
    const nl = bytes.indexOf(0x0a, at);
    at = nl < 0 ? bytes.length : nl + 1;
  }
  return at;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/**
 * Whole-file track transfer over HTTP on the host's port: `GET /tracks/{sha256}` with `Range`
 * resume. The peer writes to `{sha}.part`, resumes from its length after a cut, verifies the
 * SHA-256 and only then renames it into the cache.
 */

export class TransferFailedError extends Error {
  override name = "TransferFailedError";
}

export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parses a single `bytes=a-b` / `bytes=a-` range against a file of `size` bytes. */
export function parseRange(
  header: string | null | undefined,
  size: number,
): { start: number; end: number } | null | "invalid" {
  if (!header) return null;
  const m = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!m) return "invalid";
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "invalid";
  return { start, end };
}

export interface DownloadOptions {
  url: string;
  sha256: string;
  sizeBytes: number;
  dir: string;
  retries?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  /** Called before each retry with the attempt number, the reason and the byte it resumes at. */
  onRetry?: (attempt: number, reason: string, fromByte: number) => void;
}

/** Downloads and verifies a track, resuming a partial file; returns the cached path. */
export async function download(o: DownloadOptions): Promise<string> {
  const final = `${o.dir}/${o.sha256}.mp3`;
  if (await exists(final)) return final;
  const part = `${o.dir}/${o.sha256}.part`;
  const retries = o.retries ?? 3;
  let lastError = "";
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      o.onRetry?.(attempt, lastError, await sizeOf(part));
      await new Promise((r) => setTimeout(r, 300 * attempt));
    }
    try {
      await fetchInto(o, part);
      const bytes = await Deno.readFile(part);
      const got = await sha256Hex(bytes);
      if (got !== o.sha256) {
        await Deno.remove(part).catch(() => {});
        throw new Error("the downloaded file's checksum does not match");
      }
      await Deno.rename(part, final);
      return final;
    } catch (e) {
      o.signal?.throwIfAborted();
      lastError = (e as Error).message;
    }
  }
  throw new TransferFailedError(`download failed after ${retries} retries: ${lastError}`);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

async function fetchInto(o: DownloadOptions, part: string): Promise<void> {
  let have = await sizeOf(part);
  if (have > o.sizeBytes) {
    await Deno.remove(part);
    have = 0;
  }
  if (have === o.sizeBytes) return;
  const res = await fetch(o.url, {
    headers: have > 0 ? { Range: `bytes=${have}-` } : {},
    signal: o.signal,
  });
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw new Error(`the host answered HTTP ${res.status}`);
  }
  if (res.status === 200) have = 0; // server ignored the range: start over
  const file = await Deno.open(part, {
    write: true,
    create: true,
    truncate: have === 0,
    append: have > 0,
  });
  try {
    let lastReport = 0;
    for await (const chunk of res.body!) {
      have += chunk.length;
      if (have > o.sizeBytes) throw new Error("the host sent more bytes than announced");
      let done = 0;
      while (done < chunk.length) done += await file.write(chunk.subarray(done));
      if (have / o.sizeBytes - lastReport >= 0.1) {
        lastReport = have / o.sizeBytes;
        o.onProgress?.(lastReport);
      }
    }
  } finally {
    file.close();
  }
  if (have < o.sizeBytes) {
    throw new Error(`the connection closed after ${have} of ${o.sizeBytes} bytes`);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

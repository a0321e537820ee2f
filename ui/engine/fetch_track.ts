/**
 * A track's bytes for a web page: `GET /tracks/{sha256}` into memory, resuming with `Range`
 * after a cut, hashed as it arrives (`@noble/hashes`: plain-http pages have no `crypto.subtle`)
 * and never handed on unless the SHA-256 matches. A mismatch starts over from byte 0.
 */
import { bytesToHex } from "@noble/hashes/utils.js";
import { sha256 } from "./hash.ts";

export interface FetchTrackOptions {
  url: string;
  sha256: string;
  sizeBytes: number;
  signal?: AbortSignal;
  retries?: number;
  onProgress?: (fraction: number) => void;
  /** Before each retry: the attempt number (1-based), the reason, the byte it resumes at. */
  onRetry?: (attempt: number, reason: string, fromByte: number) => void;
}

export class TrackFetchError extends Error {
  override name = "TrackFetchError";
}

export async function fetchTrack(o: FetchTrackOptions): Promise<Uint8Array<ArrayBuffer>> {
  const buf = new Uint8Array(o.sizeBytes);
  let got = 0;
  let hash = sha256.create();
  const retries = o.retries ?? 3;
  let lastError = "";
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      o.onRetry?.(attempt, lastError, got);
      await sleep(400 * attempt, o.signal);
    }
    try {
      const res = await fetch(o.url, {
        headers: got > 0 ? { Range: `bytes=${got}-` } : {},
        signal: o.signal,
        cache: "no-store",
      });
      if (got > 0 && res.status !== 206) {
        // The server ignored the range: take the whole file again.
        got = 0;
        hash = sha256.create();
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel();
        throw new TrackFetchError(`the host answered HTTP ${res.status}`);
      }
      let reported = 0;
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (got + value.length > buf.length) {
          await reader.cancel();
          got = 0;
          hash = sha256.create();
          throw new TrackFetchError("the file is larger than the host announced");
        }
        buf.set(value, got);
        hash.update(value);
        got += value.length;
        const f = got / buf.length;
        if (f - reported >= 0.02) {
          reported = f;
          o.onProgress?.(f);
        }
      }
      if (got < buf.length) throw new TrackFetchError(`the transfer stopped at byte ${got}`);
      const digest = bytesToHex(hash.digest());
      if (digest !== o.sha256) {
        got = 0;
        hash = sha256.create();
        throw new TrackFetchError("the downloaded file's checksum does not match");
      }
      o.onProgress?.(1);
      return buf;
    } catch (e) {
      if (o.signal?.aborted) throw e;
      lastError = e instanceof TrackFetchError
        ? e.message
        : `network error (${(e as Error).message})`;
    }
  }
  throw new TrackFetchError(`Could not download the track: ${lastError}.`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

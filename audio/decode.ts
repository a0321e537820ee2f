import { MPEGDecoder } from "mpg123-decoder";
import type { Pcm } from "./player.ts";
import { type Mp3Facts, Mp3FormatError, scanMp3 } from "./mp3_scan.ts";

export class DecodeError extends Error {
  override name = "DecodeError";
}

/**
 * Checks and decodes a whole MP3 into PCM, in chunks that yield to the event loop so clock
 * pings and the control socket stay responsive (a 4-minute file takes ~0.8 s of CPU).
 * Throws {@link DecodeError} with a sentence naming the file and the reason.
 */
export async function decodeMp3(
  bytes: Uint8Array,
  opts: { id: string; fileName: string; signal?: AbortSignal; onProgress?: (f: number) => void },
): Promise<Pcm & { facts: Mp3Facts }> {
  let facts: Mp3Facts;
  try {
    facts = scanMp3(bytes);
  } catch (e) {
    if (e instanceof Mp3FormatError) {
      throw new DecodeError(`Cannot use "${opts.fileName}": ${e.message}`);
    }
    throw e;
  }
  const decoder = new MPEGDecoder({ enableGapless: true });
  await decoder.ready;
  try {
    // The frame scan knows the length: decode straight into buffers of that size (growing
    // them only if the decoder gives more), so a long track needs its PCM once, not twice.
    const pcm = new Channels(Math.ceil(facts.durationSec * facts.rateHz) + 4608);
    let rateHz = 0;
    const CHUNK = 128 * 1024;
    for (let at = 0; at < bytes.length; at += CHUNK) {
      opts.signal?.throwIfAborted();
      const out = decoder.decode(bytes.subarray(at, at + CHUNK));
      if (out.samplesDecoded > 0) {
        rateHz = out.sampleRate;
        const n = out.samplesDecoded;
        pcm.append(out.channelData[0], out.channelData[1] ?? out.channelData[0], n);
      }
      opts.onProgress?.(Math.min(1, (at + CHUNK) / bytes.length));
      await new Promise((r) => setTimeout(r, 0));
    }
    if (pcm.length === 0) {
      throw new DecodeError(`Cannot decode "${opts.fileName}": no audio could be decoded`);
    }
    return { id: opts.id, rateHz, ...pcm.take(), facts };
  } finally {
    decoder.free();
  }
}

/** Two channels of samples appended in blocks. */
class Channels {
  #left: Float32Array;
  #right: Float32Array;
  length = 0;

  constructor(capacity: number) {
    this.#left = new Float32Array(capacity);
    this.#right = new Float32Array(capacity);
  }

  append(l: Float32Array, r: Float32Array, n: number) {
    if (this.length + n > this.#left.length) {
      const size = Math.max(this.length + n, Math.ceil(this.#left.length * 1.25));
      for (const side of ["left", "right"] as const) {
        const grown = new Float32Array(size);
        grown.set(side === "left" ? this.#left : this.#right);
        if (side === "left") this.#left = grown;
        else this.#right = grown;
      }
    }
    this.#left.set(l.subarray(0, n), this.length);
    this.#right.set(r.subarray(0, n), this.length);
    this.length += n;
  }

  /** The samples, as views of exactly `length` (no copy). */
  take(): { left: Float32Array; right: Float32Array } {
    return {
      left: this.#left.subarray(0, this.length),
      right: this.#right.subarray(0, this.length),
    };
  }
}

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
    const left: Float32Array[] = [], right: Float32Array[] = [];
    let total = 0, rateHz = 0;
    const CHUNK = 128 * 1024;
    for (let at = 0; at < bytes.length; at += CHUNK) {
      opts.signal?.throwIfAborted();
      const out = decoder.decode(bytes.subarray(at, at + CHUNK));
      if (out.samplesDecoded > 0) {
        rateHz = out.sampleRate;
        left.push(out.channelData[0].slice(0, out.samplesDecoded));
        right.push((out.channelData[1] ?? out.channelData[0]).slice(0, out.samplesDecoded));
        total += out.samplesDecoded;
      }
      opts.onProgress?.(Math.min(1, (at + CHUNK) / bytes.length));
      await new Promise((r) => setTimeout(r, 0));
    }
    if (total === 0) {
      throw new DecodeError(`Cannot decode "${opts.fileName}": no audio could be decoded`);
    }
    return { id: opts.id, rateHz, left: concat(left, total), right: concat(right, total), facts };
  } finally {
    decoder.free();
  }
}

function concat(parts: Float32Array[], total: number): Float32Array {
  const out = new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

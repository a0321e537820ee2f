/// <reference lib="deno.worker" />
/**
 * One decode on a thread of its own (./decode_native.ts starts it and ends it): the MP3's bytes
 * in, the track's samples out (moved, not copied), or the error's name and sentence. Everything
 * the decoder allocated goes with the thread.
 */
import { decodeMp3, type DecodeOptions } from "./decode.ts";

export type DecodeJob = { bytes: Uint8Array; opts: Omit<DecodeOptions, "signal" | "onProgress"> };

self.onmessage = async (ev: MessageEvent<DecodeJob>) => {
  try {
    const pcm = await decodeMp3(ev.data.bytes, ev.data.opts);
    const buffers = new Set([pcm.left.buffer, pcm.right.buffer]) as Set<ArrayBuffer>;
    self.postMessage({ ok: true, pcm }, [...buffers]);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    self.postMessage({ ok: false, name: err.name, message: err.message });
  }
};

/**
 * A native device decodes each track on a thread of its own (./decode_job.ts) and ends the
 * thread with the decode: whatever the decoder allocated (its WebAssembly memory, the garbage of
 * a few hundred blocks) is gone at once, instead of waiting in the main thread's heap for the
 * collector (a host with a 10-minute track kept 122–180 MB, depending on when it ran). The main
 * thread also stays free for clock pings and the control socket meanwhile.
 */
import { type DecodedMp3, DecodeError, type DecodeOptions } from "./decode.ts";
import type { DecodeJob } from "./decode_job.ts";

/** decodeMp3(bytes, opts) with 16-bit samples, on a thread of its own (bytes are copied). */
export function decodeMp3Apart(
  bytes: Uint8Array,
  opts: Pick<DecodeOptions, "id" | "fileName" | "signal">,
): Promise<DecodedMp3<Int16Array>> {
  const worker = new Worker(new URL("./decode_job.ts", import.meta.url), { type: "module" });
  return new Promise<DecodedMp3<Int16Array>>((resolve, reject) => {
    const done = () => {
      worker.terminate();
      opts.signal?.removeEventListener("abort", abort);
    };
    const abort = () => {
      done();
      reject(opts.signal!.reason);
    };
    if (opts.signal?.aborted) return abort();
    opts.signal?.addEventListener("abort", abort, { once: true });
    worker.onmessage = (ev) => {
      done();
      const m = ev.data;
      if (m.ok) return resolve(m.pcm);
      const err = m.name === "DecodeError" ? new DecodeError(m.message) : new Error(m.message);
      reject(err);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      done();
      reject(new DecodeError(`Cannot decode "${opts.fileName}": ${e.message}`));
    };
    const copy = bytes.slice();
    const job: DecodeJob = {
      bytes: copy,
      opts: { id: opts.id, fileName: opts.fileName, format: "int16" },
    };
    worker.postMessage(job, [copy.buffer]);
  });
}

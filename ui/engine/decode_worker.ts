/// <reference lib="webworker" />
/**
 * The browser peer's decoder, a module Web Worker (`/decode_worker.js`): MP3 bytes in, int16
 * PCM out, with the same frame scan and the same WASM decoder as native peers
 * (`audio/decode.ts`), so a file a native peer refuses is refused here in the same words.
 * Decoding off the page's thread keeps the clock pings and the audio scheduling on time.
 * Messages: `decode_messages.ts`.
 */
import { decodeMp3 } from "../../audio/decode.ts";
import type { DecodeReply, DecodeRequest } from "./decode_messages.ts";

declare const self: DedicatedWorkerGlobalScope;

type Job = Extract<DecodeRequest, { type: "decode" }> & { abort: AbortController };

/** Waiting and running decodes, oldest first: one at a time keeps one track's PCM in flight. */
const jobs: Job[] = [];

function reply(m: DecodeReply, transfer: Transferable[] = []) {
  self.postMessage(m, transfer);
}

self.onmessage = (ev: MessageEvent<DecodeRequest>) => {
  const m = ev.data as Partial<DecodeRequest> | null;
  const id = typeof m?.id === "string" ? m.id : null;
  if (m?.type === "cancel" && id !== null) {
    for (const job of jobs.filter((j) => j.id === id)) job.abort.abort();
    return;
  }
  if (m?.type !== "decode" || id === null) {
    // Without an id nobody could be told: this is the engine's bug, shown on its console.
    if (id === null) console.error("decode worker: a message without an id was ignored", m);
    else reply({ type: "error", id, message: "The decoder was sent a request it cannot read" });
    return;
  }
  const fileName = typeof m.fileName === "string" ? m.fileName : "the track";
  if (!(m.bytes instanceof ArrayBuffer)) {
    reply({ type: "error", id, message: `Cannot decode "${fileName}": no file bytes arrived` });
    return;
  }
  jobs.push({ type: "decode", id, fileName, bytes: m.bytes, abort: new AbortController() });
  if (jobs.length === 1) void run();
};

async function run() {
  while (jobs.length > 0) {
    await decode(jobs[0]);
    jobs.shift();
  }
}

async function decode(job: Job) {
  const { id, fileName, abort } = job;
  if (abort.signal.aborted) return;
  let tenths = 0;
  try {
    const pcm = await decodeMp3(new Uint8Array(job.bytes), {
      id,
      fileName,
      format: "int16",
      signal: abort.signal,
      onProgress(fraction) {
        // decodeMp3 reports every 128 KB (180 times for a 10-minute 320 kbps file): a tenth is
        // enough for a progress bar and keeps the page's message queue quiet.
        const t = Math.floor(fraction * 10);
        if (t > tenths) {
          tenths = t;
          reply({ type: "progress", id, fraction });
        }
      },
    });
    if (abort.signal.aborted) return;
    // Views of the decoder's own buffers: sized from the frame scan, they are ~6000 frames
    // (12 KB a channel) longer than the track, too little to be worth a second copy of it.
    const left = pcm.left as Int16Array<ArrayBuffer>, right = pcm.right as Int16Array<ArrayBuffer>;
    reply({
      type: "done",
      id,
      rateHz: pcm.rateHz,
      left,
      right,
      durationSec: left.length / pcm.rateHz,
    }, [left.buffer, right.buffer]);
  } catch (e) {
    if (abort.signal.aborted) return;
    reply({ type: "error", id, message: sentence(e, fileName) });
  }
}

/** DecodeError already says which file and why; anything else gets the file named. */
function sentence(e: unknown, fileName: string): string {
  if (e instanceof Error && e.name === "DecodeError") return e.message;
  const why = e instanceof Error ? e.message : String(e);
  return `Cannot decode "${fileName}": ${why || "the decoder failed"}`;
}

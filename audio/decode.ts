import { MPEGDecoder } from "mpg123-decoder";
import type { Pcm, Samples } from "./player.ts";
import { type Mp3Facts, Mp3FormatError, scanMp3 } from "./mp3_scan.ts";

export class DecodeError extends Error {
  override name = "DecodeError";
}

export interface DecodeOptions {
  id: string;
  fileName: string;
  /**
   * Sample type of the result: float32 (the default) or int16 (what every device plays from:
   * half the memory, and the float copy of the whole track never exists).
   */
  format?: "float32" | "int16";
  signal?: AbortSignal;
  /** Share of the file's bytes decoded so far, 0…1, after every 128 KB. */
  onProgress?: (fraction: number) => void;
}

/** A decoded track and what the frame scan found. */
export type DecodedMp3<S extends Samples> = Pcm<S> & { facts: Mp3Facts };

/**
 * Checks and decodes a whole MP3 into PCM, in chunks that yield to the event loop so clock
 * pings and the control socket stay responsive (a 4-minute file takes ~0.8 s of CPU).
 * Throws {@link DecodeError} with a sentence naming the file and the reason.
 */
export function decodeMp3(
  bytes: Uint8Array,
  opts: DecodeOptions & { format: "int16" },
): Promise<DecodedMp3<Int16Array>>;
export function decodeMp3(
  bytes: Uint8Array,
  opts: DecodeOptions & { format?: "float32" },
): Promise<DecodedMp3<Float32Array>>;
export function decodeMp3(bytes: Uint8Array, opts: DecodeOptions): Promise<DecodedMp3<Samples>>;
export async function decodeMp3(
  bytes: Uint8Array,
  opts: DecodeOptions,
): Promise<DecodedMp3<Samples>> {
  let facts: Mp3Facts;
  try {
    facts = scanMp3(bytes);
  } catch (e) {
    if (e instanceof Mp3FormatError) {
      throw new DecodeError(`Cannot use "${opts.fileName}": ${e.message}`);
    }
    throw e;
  }
  await checkWasm(opts.fileName);
  const decoder = new MPEGDecoder({ enableGapless: true });
  await settlesWithin(decoder.ready, READY_TIMEOUT_MS, () =>
    new DecodeError(
      `Cannot decode "${opts.fileName}": the decoder did not start within ${
        READY_TIMEOUT_MS / 1000
      } s`,
    ));
  try {
    // The frame scan knows the length: decode straight into buffers of that size (growing
    // them only if the decoder gives more), so a long track needs its PCM once, not twice.
    const capacity = Math.ceil(facts.durationSec * facts.rateHz) + 4608;
    const pcm = opts.format === "int16"
      ? new Channels(Int16Array, capacity, toInt16)
      : new Channels(Float32Array, capacity, copyFloat);
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

/**
 * mpg123-decoder's `ready` never settles when WebAssembly may not compile (its inflate step
 * drops the rejection): in a worker whose Content-Security-Policy lacks 'wasm-unsafe-eval', or
 * a browser in a locked-down mode, a decode would hang for ever. Compiling an empty module
 * first turns that into a sentence; the timeout catches whatever else keeps it from starting.
 */
const READY_TIMEOUT_MS = 20_000;
let wasmAllowed: Promise<boolean> | undefined;

async function checkWasm(fileName: string): Promise<void> {
  wasmAllowed ??= WebAssembly.compile(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])).then(
    () => true,
    () => false,
  );
  if (!(await wasmAllowed)) {
    throw new DecodeError(
      `Cannot decode "${fileName}": this page may not run WebAssembly, which the decoder needs ` +
        "(a security policy or the browser's locked-down mode forbids it)",
    );
  }
}

/** `p`, or the error `timeout()` makes if `p` has not settled within `ms`. */
async function settlesWithin<T>(p: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(timeout()), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Writes the first `n` decoder samples of `src` into `dst` from index `at`. */
type Store<S extends Samples> = (dst: S, at: number, src: Float32Array, n: number) => void;

const copyFloat: Store<Float32Array> = (dst, at, src, n) => dst.set(src.subarray(0, n), at);

/**
 * Float −1…1 to int16, rounded and clamped (+1.0 would wrap to −32768 otherwise): the player
 * reads it back as value/32768, within half a step of the float.
 */
const toInt16: Store<Int16Array> = (dst, at, src, n) => {
  for (let i = 0; i < n; i++) {
    const v = Math.round(src[i] * 32768);
    dst[at + i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
};

/** Two channels of samples appended in blocks. */
class Channels<S extends Samples> {
  #left: S;
  #right: S;
  length = 0;

  constructor(
    readonly make: new (length: number) => S,
    capacity: number,
    readonly store: Store<S>,
  ) {
    this.#left = new make(capacity);
    this.#right = new make(capacity);
  }

  append(l: Float32Array, r: Float32Array, n: number) {
    if (this.length + n > this.#left.length) {
      const size = Math.max(this.length + n, Math.ceil(this.#left.length * 1.25));
      for (const side of ["left", "right"] as const) {
        const grown = new this.make(size);
        grown.set(side === "left" ? this.#left : this.#right);
        if (side === "left") this.#left = grown;
        else this.#right = grown;
      }
    }
    this.store(this.#left, this.length, l, n);
    this.store(this.#right, this.length, r, n);
    this.length += n;
  }

  /** The samples, as views of exactly `length` (no copy). */
  take(): { left: S; right: S } {
    return {
      left: this.#left.subarray(0, this.length) as S,
      right: this.#right.subarray(0, this.length) as S,
    };
  }
}

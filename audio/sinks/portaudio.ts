import { AudioDeviceError, type AudioSink, realNowMs, type SinkTiming } from "../sink.ts";

/**
 * PortAudio in blocking-write mode through `Deno.dlopen`: the backend for macOS (CoreAudio)
 * and Windows (WASAPI/MME); on Linux it runs through ALSA (and ALSA's pulse plugin), which is
 * how CI exercises it. We only ever write what `Pa_GetStreamWriteAvailable` allows, so writes
 * never block the loop.
 *
 * Timing: PortAudio's blocking API has no per-sample timestamps, so the frame heard now is
 * `written − (capacity − writeAvailable) − outputLatency·rate`, with `capacity` the write space
 * of the empty buffer and `outputLatency` from `Pa_GetStreamInfo`. It is coarser than pulse's
 * reports (buffer-granular), which the device clock's regression smooths.
 */

const ulong = Deno.build.os === "windows" ? "u32" : "u64";
/** What output and input share: the library, a default stream, its start, stop and info. */
export const PA_COMMON_SYMBOLS = {
  Pa_Initialize: { parameters: [], result: "i32" },
  Pa_Terminate: { parameters: [], result: "i32" },
  Pa_GetErrorText: { parameters: ["i32"], result: "pointer" },
  Pa_OpenDefaultStream: {
    parameters: ["buffer", "i32", "i32", ulong, "f64", ulong, "pointer", "pointer"],
    result: "i32",
  },
  Pa_StartStream: { parameters: ["pointer"], result: "i32" },
  Pa_StopStream: { parameters: ["pointer"], result: "i32" },
  Pa_CloseStream: { parameters: ["pointer"], result: "i32" },
  Pa_GetStreamInfo: { parameters: ["pointer"], result: "pointer" },
} as const;
/** `unsigned long` and `signed long` of the platform's C ABI (32-bit on Windows). */
export const PA_ULONG = ulong;
export const PA_LONG = ulong === "u32" ? "i32" : "i64";
export const PA_FLOAT32 = 0x1;

const SYMBOLS = {
  ...PA_COMMON_SYMBOLS,
  Pa_GetStreamWriteAvailable: { parameters: ["pointer"], result: PA_LONG },
  Pa_WriteStream: { parameters: ["pointer", "buffer", ulong], result: "i32" },
} as const;

export function portAudioLibName(): string {
  if (Deno.build.os === "windows") return "portaudio.dll";
  if (Deno.build.os === "darwin") return "libportaudio.2.dylib";
  return "libportaudio.so.2";
}

export class PortAudioSink implements AudioSink {
  readonly backend = "portaudio" as const;
  readonly audible = true;
  #dl: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;
  #stream: Deno.PointerValue = null;
  #written = 0;
  #capacity = 0;
  #latencyFrames = 0;
  #initialized = false;

  constructor(readonly rateHz = 48_000, readonly aheadMs = 70) {}

  #check(rc: number | bigint, what: string): void {
    if (Number(rc) >= 0) return;
    const p = this.#dl!.symbols.Pa_GetErrorText(Number(rc));
    const text = p ? new Deno.UnsafePointerView(p).getCString() : `error ${rc}`;
    throw new AudioDeviceError(`PortAudio: ${what}: ${text}`);
  }

  open(): Promise<void> {
    try {
      this.#dl = Deno.dlopen(portAudioLibName(), SYMBOLS);
    } catch (e) {
      throw new AudioDeviceError(`PortAudio is not installed (${(e as Error).message})`);
    }
    const pa = this.#dl.symbols;
    this.#check(pa.Pa_Initialize(), "initialize");
    this.#initialized = true;
    const out = new BigUint64Array(1);
    const framesPerBuffer = Math.round(this.rateHz / 100); // 10 ms
    this.#check(
      pa.Pa_OpenDefaultStream(
        out,
        0,
        2,
        BigInt(PA_FLOAT32) as never,
        this.rateHz,
        BigInt(framesPerBuffer) as never,
        null,
        null,
      ),
      "open the default output",
    );
    this.#stream = Deno.UnsafePointer.create(out[0]);
    const info = pa.Pa_GetStreamInfo(this.#stream);
    if (info) {
      this.#latencyFrames = new Deno.UnsafePointerView(info).getFloat64(16) * this.rateHz;
    }
    this.#check(pa.Pa_StartStream(this.#stream), "start the output");
    this.#capacity = Number(pa.Pa_GetStreamWriteAvailable(this.#stream));
    return Promise.resolve();
  }

  #available(): number {
    return Number(this.#dl!.symbols.Pa_GetStreamWriteAvailable(this.#stream));
  }

  writableFrames(): number {
    const avail = this.#available();
    if (avail < 0) return 0;
    const buffered = this.#capacity - avail;
    const target = Math.min(this.#capacity, Math.round((this.aheadMs * this.rateHz) / 1000));
    return Math.max(0, Math.min(avail, target - buffered));
  }

  write(interleaved: Float32Array): void {
    const frames = interleaved.length / 2;
    const rc = this.#dl!.symbols.Pa_WriteStream(
      this.#stream,
      new Uint8Array(interleaved.buffer, interleaved.byteOffset, interleaved.byteLength),
      BigInt(frames) as never,
    );
    // Output underflow (-9980) is reported but the data was written.
    if (rc !== -9980) this.#check(rc, "write");
    this.#written += frames;
  }

  timing(): SinkTiming | null {
    const avail = this.#available();
    const now = realNowMs();
    if (avail < 0) return null;
    const buffered = this.#capacity - avail;
    return { frame: this.#written - buffered - this.#latencyFrames, localMs: now };
  }

  close(): Promise<void> {
    const pa = this.#dl?.symbols;
    if (pa && this.#stream) {
      pa.Pa_StopStream(this.#stream);
      pa.Pa_CloseStream(this.#stream);
      this.#stream = null;
    }
    if (pa && this.#initialized) pa.Pa_Terminate();
    this.#initialized = false;
    this.#dl?.close();
    this.#dl = null;
    return Promise.resolve();
  }
}

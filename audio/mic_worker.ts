/// <reference lib="deno.worker" />
/**
 * The microphone's capture loop, on its own thread (like the output, `output_worker.ts`): the
 * host's main thread may be busy pumping a webview, and a late read here would overflow the
 * server's buffer and lose samples. It gathers the samples and, for each timing report, which
 * sample was captured at which local time; `mic.ts` fits the clock when recording stops.
 */
import { AudioDeviceError, realNowMs } from "./sink.ts";
import {
  PA_COMMON_SYMBOLS,
  PA_FLOAT32,
  PA_LONG,
  PA_ULONG,
  portAudioLibName,
} from "./sinks/portaudio.ts";
import {
  cstr,
  ERR_NOENTITY,
  FLAG_ADJUST_LATENCY,
  FLAG_AUTO_TIMING_UPDATE,
  floatSpec,
  PulseConnection,
  readTimingInfo,
  realtimeMinusLocalMs,
  STREAM_FAILED,
  STREAM_READY,
  STREAM_TERMINATED,
} from "./sinks/pulse.ts";

export type ToMicWorker =
  | {
    type: "start";
    backend: "pulse" | "portaudio";
    /** PulseAudio source name; null = the default input. */
    source: string | null;
    rateHz: number;
    maxMs: number;
  }
  | { type: "stop" };

export type FromMicWorker =
  | { type: "started"; source: string; rateHz: number }
  | { type: "error"; text: string }
  | {
    type: "stopped";
    /** Mono samples, `frames` long. */
    samples: Float32Array;
    /** Pairs (sample index, local ms at which it was captured), one per timing report. */
    observations: Float64Array;
    /** Set when capture ended by itself: the size limit, or the device went away. */
    endedBy?: string;
  };

/** One capture backend: delivers samples in order and reports capture times. */
interface Capture {
  readonly source: string;
  /** Moves captured samples into `out` from `at`; returns how many (≤ out.length − at). */
  read(out: Float32Array, at: number): number;
  /** A new (sample index, local ms captured) report, or null. */
  timing(): { frame: number; localMs: number } | null;
  close(): void;
}

const post = (m: FromMicWorker, transfer: Transferable[] = []) => self.postMessage(m, transfer);

let capture: Capture | null = null;
let stopRequested = false;

self.onmessage = async (ev: MessageEvent<ToMicWorker>) => {
  const m = ev.data;
  if (m.type === "stop") {
    stopRequested = true;
    return;
  }
  try {
    capture = m.backend === "pulse"
      ? await PulseCapture.open(m.source, m.rateHz)
      : PortAudioCapture.open(m.rateHz);
  } catch (e) {
    const text = e instanceof AudioDeviceError
      ? e.message
      : `the microphone failed: ${(e as Error).message}`;
    post({ type: "error", text });
    self.close();
    return;
  }
  await run(capture, m);
};

/** A source that has not delivered a sample this long after opening is reported as silent. */
const FIRST_DATA_TIMEOUT_MS = 5000;

async function run(c: Capture, m: Extract<ToMicWorker, { type: "start" }>) {
  const samples = new Float32Array(Math.ceil((m.maxMs / 1000) * m.rateHz));
  const obs: number[] = [];
  let frames = 0;
  let endedBy: string | undefined;
  const openedAt = performance.now();
  try {
    // "started" once samples flow: a sink's monitor, say, delivers nothing for its first
    // ~1.5 s here, and a probe played then would be lost.
    while (frames === 0 || obs.length === 0) {
      if (stopRequested) break;
      if (performance.now() - openedAt > FIRST_DATA_TIMEOUT_MS) {
        throw new AudioDeviceError(
          `The microphone (${c.source}) delivered no sound for ${FIRST_DATA_TIMEOUT_MS / 1000} s`,
        );
      }
      frames += c.read(samples, frames);
      const t = c.timing();
      // Reports from before the first sample describe a stream not yet running.
      if (t && frames > 0) obs.push(t.frame, t.localMs);
      await new Promise((r) => setTimeout(r, 4));
    }
  } catch (e) {
    c.close();
    post({ type: "error", text: (e as Error).message });
    self.close();
    return;
  }
  post({ type: "started", source: c.source, rateHz: m.rateHz });
  try {
    while (!stopRequested) {
      frames += c.read(samples, frames);
      const t = c.timing();
      if (t) obs.push(t.frame, t.localMs);
      if (frames >= samples.length) {
        endedBy = `recording stopped at the ${Math.round(m.maxMs / 1000)} s limit`;
        break;
      }
      await new Promise((r) => setTimeout(r, 4));
    }
    if (!endedBy) frames += c.read(samples, frames);
  } catch (e) {
    endedBy = `the microphone stopped: ${(e as Error).message}`;
  }
  c.close();
  // A stop that comes after the limit still finds the recording waiting.
  while (!stopRequested) await new Promise((r) => setTimeout(r, 10));
  const out = samples.slice(0, frames);
  const observations = Float64Array.from(obs);
  post({ type: "stopped", samples: out, observations, endedBy }, [
    out.buffer,
    observations.buffer,
  ]);
  self.close();
}

/**
 * A libpulse record stream, float32 mono (the server mixes the source's channels down).
 *
 * Timing (PulseAudio 16's protocol-native, checked against its reports here): a timing request
 * is answered with one snapshot taken at `timestamp` (server CLOCK_REALTIME): `write_index`,
 * the end of the server's queue of captured bytes for us; `source_usec`, the source's latency
 * plus the bytes still on their way from the capture thread to that queue, i.e. how long ago
 * the byte at `write_index` was captured; and, when the source is a sink's monitor,
 * `sink_usec`, how long until the monitored sink plays the end of what it has rendered. So
 * sample `write_index / 4` was captured at `timestamp − source_usec + sink_usec`: for a real
 * microphone (sink_usec 0) when the sound reached it, for a monitor when the sink plays it.
 * (`read_index` is no use: libpulse advances it locally on every `pa_stream_drop`.) Our sample
 * count starts at the stream's first byte, index 0 of the server's queue: measured equal to
 * the report's `read_index` after each drop.
 *
 * Some reports run late (a monitor's rewind queue holds back 4.9 ms of samples about half
 * the time, uncounted); `fitCaptureClock` in mic.ts follows the earliest.
 */
class PulseCapture implements Capture {
  #lastStamp = -1;
  #lastRequestMs = 0;
  #consumed = 0;
  #dataPtr = new BigUint64Array(1);
  #nbytes = new BigUint64Array(1);
  #carry = new Uint8Array(4);
  #carryLen = 0;

  private constructor(
    readonly conn: PulseConnection,
    readonly stream: Deno.PointerValue,
    readonly source: string,
  ) {}

  static async open(source: string | null, rateHz: number): Promise<PulseCapture> {
    const conn = await PulseConnection.open("PhaseLock").catch((e: Error) => {
      throw new AudioDeviceError(
        e.message.startsWith("libpulse")
          ? `Cannot use the microphone: ${e.message}`
          : `Cannot use the microphone: no sound server (${e.message})`,
      );
    });
    const pa = conn.pa;
    const stream = pa.pa_stream_new(
      conn.ctx,
      cstr("PhaseLock calibration microphone"),
      floatSpec(rateHz, 1),
      null,
    );
    if (!stream) {
      conn.close();
      throw new AudioDeviceError(`Cannot use the microphone: PulseAudio: ${conn.reason()}`);
    }
    const attr = new Uint8Array(20);
    const av = new DataView(attr.buffer);
    for (let off = 0; off < 20; off += 4) av.setUint32(off, 0xffffffff, true);
    // fragsize 10 ms: samples arrive in 10 ms pieces (the monitored sink, if any, renders in
    // blocks this size); timing comes from the reports, not from when pieces arrive.
    av.setUint32(16, Math.round(rateHz / 100) * 4, true);
    const dev = source ? Deno.UnsafePointer.of(cstr(source)) : null;
    const named = source ? `"${source}"` : "the default input";
    const fail = (what: string): never => {
      const notFound = conn.errno() === ERR_NOENTITY;
      const text = notFound && source
        ? `Microphone ${named} not found: PulseAudio has no source by that name`
        : `Cannot record from ${named}: PulseAudio: ${what}: ${conn.reason()}`;
      pa.pa_stream_unref(stream);
      conn.close();
      throw new AudioDeviceError(text);
    };
    if (
      pa.pa_stream_connect_record(
        stream,
        dev,
        attr,
        FLAG_AUTO_TIMING_UPDATE | FLAG_ADJUST_LATENCY,
      ) < 0
    ) fail("cannot connect");
    try {
      await conn.until(() => {
        const s = pa.pa_stream_get_state(stream);
        if (s === STREAM_FAILED || s === STREAM_TERMINATED) fail("the stream failed");
        return s === STREAM_READY;
      }, `opening the microphone ${named}`);
    } catch (e) {
      if (conn.ctx) {
        pa.pa_stream_unref(stream);
        conn.close();
      }
      throw e;
    }
    return new PulseCapture(conn, stream, `pulse:${source ?? "default"}`);
  }

  read(out: Float32Array, at: number): number {
    const pa = this.conn.pa;
    this.conn.iterate();
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    let pos = at * 4 + this.#carryLen;
    if (this.#carryLen) bytes.set(this.#carry.subarray(0, this.#carryLen), at * 4);
    while (pos < bytes.length && Number(pa.pa_stream_readable_size(this.stream)) > 0) {
      if (pa.pa_stream_peek(this.stream, this.#dataPtr, this.#nbytes) < 0) {
        this.conn.fail("reading the microphone");
      }
      const n = Number(this.#nbytes[0]);
      if (n === 0) break;
      const take = Math.min(n, bytes.length - pos);
      const ptr = Deno.UnsafePointer.create(this.#dataPtr[0]);
      // A null pointer is a hole (samples the server lost): they stay silent (zeros).
      if (ptr) bytes.set(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, take)), pos);
      else bytes.fill(0, pos, pos + take);
      pos += take;
      this.#consumed += n;
      pa.pa_stream_drop(this.stream);
    }
    const whole = Math.floor(pos / 4);
    this.#carryLen = pos - whole * 4;
    this.#carry.set(bytes.subarray(whole * 4, pos));
    return whole - at;
  }

  timing(): { frame: number; localMs: number } | null {
    const pa = this.conn.pa;
    const now = performance.now();
    // Automatic updates slow down to one every 1.5 s; ask at every turn (~4 ms) for a dense fit:
    // a monitor's reports come in 10 ms steps, and the fit's precision grows with their number.
    if (now - this.#lastRequestMs >= 3) {
      this.#lastRequestMs = now;
      const op = pa.pa_stream_update_timing_info(this.stream, null, null);
      if (op) pa.pa_operation_unref(op);
    }
    const t = readTimingInfo(pa, this.stream);
    if (!t || t.stampUs === this.#lastStamp) return null;
    this.#lastStamp = t.stampUs;
    if (!t.playing || t.writeIndex === null) return null;
    const capturedMs = t.stampUs / 1000 - realtimeMinusLocalMs() +
      (t.sinkUs - t.sourceUs) / 1000;
    return { frame: t.writeIndex / 4, localMs: capturedMs };
  }

  close(): void {
    const pa = this.conn.pa;
    pa.pa_stream_disconnect(this.stream);
    pa.pa_stream_unref(this.stream);
    this.conn.close();
  }
}

const PA_SYMBOLS = {
  ...PA_COMMON_SYMBOLS,
  Pa_GetStreamReadAvailable: { parameters: ["pointer"], result: PA_LONG },
  Pa_ReadStream: { parameters: ["pointer", "buffer", PA_ULONG], result: "i32" },
} as const;
const PA_INPUT_OVERFLOWED = -9981;

/**
 * PortAudio's default input in blocking-read mode (macOS, Windows; on Linux through ALSA).
 * Only the default input: PortAudio has no PulseAudio source names.
 *
 * Timing: the blocking API has no capture timestamps (`inputBufferAdcTime` exists only in
 * callback mode, and `Pa_GetStreamTime` runs on a clock of its own), so each read reports:
 * the sample that will follow the ones waiting in the buffer (`read + available`) is being
 * captured now, minus the stream's `inputLatency`. That is buffer-granular (it steps once per
 * host buffer) and its absolute offset is only as good as the latency the host API declares;
 * the fit over the recording averages the steps, and a constant offset cancels in calibration.
 */
class PortAudioCapture implements Capture {
  readonly source = "portaudio:default";
  #read = 0;
  #latencyFrames = 0;
  #chunk: Float32Array;

  private constructor(
    readonly dl: Deno.DynamicLibrary<typeof PA_SYMBOLS>,
    readonly stream: Deno.PointerValue,
    readonly channels: number,
    readonly rateHz: number,
  ) {
    this.#chunk = new Float32Array(Math.round(rateHz / 50) * channels);
    const info = dl.symbols.Pa_GetStreamInfo(stream);
    // PaStreamInfo: int structVersion; double inputLatency (s); double outputLatency; ...
    if (info) this.#latencyFrames = new Deno.UnsafePointerView(info).getFloat64(8) * rateHz;
  }

  static open(rateHz: number): PortAudioCapture {
    let dl: Deno.DynamicLibrary<typeof PA_SYMBOLS>;
    try {
      dl = Deno.dlopen(portAudioLibName(), PA_SYMBOLS);
    } catch (e) {
      throw new AudioDeviceError(
        `Cannot use the microphone: PortAudio is not installed (${(e as Error).message})`,
      );
    }
    const pa = dl.symbols;
    const text = (rc: number) => {
      const p = pa.Pa_GetErrorText(rc);
      return p ? new Deno.UnsafePointerView(p).getCString() : `error ${rc}`;
    };
    const init = pa.Pa_Initialize();
    if (init < 0) {
      dl.close();
      throw new AudioDeviceError(`Cannot use the microphone: PortAudio: ${text(init)}`);
    }
    const out = new BigUint64Array(1);
    let rc = 0;
    // Mono when the device allows it; some only open in stereo, mixed down on read.
    for (const channels of [1, 2]) {
      rc = pa.Pa_OpenDefaultStream(
        out,
        channels,
        0,
        BigInt(PA_FLOAT32) as never,
        rateHz,
        BigInt(Math.round(rateHz / 100)) as never, // 10 ms
        null,
        null,
      );
      if (rc >= 0) {
        const stream = Deno.UnsafePointer.create(out[0]);
        rc = pa.Pa_StartStream(stream);
        if (rc >= 0) return new PortAudioCapture(dl, stream, channels, rateHz);
        pa.Pa_CloseStream(stream);
      }
    }
    pa.Pa_Terminate();
    dl.close();
    throw new AudioDeviceError(
      `Cannot open the default microphone: PortAudio: ${text(rc)}`,
    );
  }

  read(out: Float32Array, at: number): number {
    const pa = this.dl.symbols;
    let got = 0;
    while (at + got < out.length) {
      const avail = Number(pa.Pa_GetStreamReadAvailable(this.stream));
      if (avail < 0) throw new AudioDeviceError(`PortAudio: read failed (${avail})`);
      const n = Math.min(avail, this.#chunk.length / this.channels, out.length - at - got);
      if (n <= 0) break;
      const rc = pa.Pa_ReadStream(
        this.stream,
        new Uint8Array(this.#chunk.buffer, 0, n * this.channels * 4),
        BigInt(n) as never,
      );
      // An overflow is reported, but the frames returned are the newest: count them as read.
      if (rc < 0 && rc !== PA_INPUT_OVERFLOWED) {
        throw new AudioDeviceError(`PortAudio: read failed (${rc})`);
      }
      for (let i = 0; i < n; i++) {
        let v = 0;
        for (let c = 0; c < this.channels; c++) v += this.#chunk[i * this.channels + c];
        out[at + got + i] = v / this.channels;
      }
      got += n;
      this.#read += n;
    }
    return got;
  }

  timing(): { frame: number; localMs: number } | null {
    const before = realNowMs();
    const avail = Number(this.dl.symbols.Pa_GetStreamReadAvailable(this.stream));
    const after = realNowMs();
    if (avail < 0) return null;
    const frame = this.#read + avail + this.#latencyFrames;
    return { frame, localMs: (before + after) / 2 };
  }

  close(): void {
    const pa = this.dl.symbols;
    pa.Pa_StopStream(this.stream);
    pa.Pa_CloseStream(this.stream);
    pa.Pa_Terminate();
    this.dl.close();
  }
}

/**
 * The host's microphone, for calibration: record while every device plays a probe, then find
 * each probe's arrival (`arrival.ts`) and turn its sample index into local time.
 *
 * Only differences between arrivals matter, so a constant error in "when was sample i
 * captured" cancels; what must hold is that the mapping stays consistent across the whole
 * recording (≤ 0.05 ms over ~10 s). The capture device's crystal is not the local clock's
 * (PulseAudio's null sink runs 130–300 ppm off here: 3 ms over 10 s), so the nominal rate is
 * never used: the device's capture reports are fitted by least squares over the recording, as
 * {@link DeviceClock} does for outputs (but over all of it, not a sliding window).
 *
 * Capture runs in a worker (`mic_worker.ts`): the host's main thread may be pumping a webview.
 */
import { AudioDeviceError } from "./sink.ts";
import type { FromMicWorker, ToMicWorker } from "./mic_worker.ts";

export interface MicRecording {
  /** Nominal sample rate of `samples`. */
  rateHz: number;
  /** Mono samples (channels mixed). */
  samples: Float32Array;
  /** Local time (realNowMs() clock of audio/sink.ts) at which sample i reached the microphone. */
  localMsOf(i: number): number;
  /** Inverse: the (fractional) sample index captured at local time ms. */
  indexAt(localMs: number): number;
  /** Where it came from, for messages: e.g. "pulse:alsa_input.usb-mic". */
  source: string;
  /** The capture device's rate measured against the local clock (Hz). */
  measuredRateHz: number;
  /** RMS of the capture reports around the fitted line (ms): how noisy the timing was. */
  fitRmsMs: number;
  /** Capture reports the clock was fitted to (see {@link fitCaptureClock}). */
  timingReports: number;
  /** Set when the recording ended early, e.g. at the length limit: a sentence for the user. */
  warning?: string;
}

export interface MicSession {
  readonly source: string;
  readonly rateHz: number;
  stop(): Promise<MicRecording>;
}

export type MicBackend = "pulse" | "portaudio";

/** Longest recording kept (ms): 60 s of mono float32 at 48 kHz is 11 MB. */
export const MIC_MAX_MS = 60_000;

/**
 * Starts capturing. source: a PulseAudio source name, or null/undefined for the default input.
 * Throws AudioDeviceError with a sentence a user understands (no such source, no sound server,
 * library missing). `backend` defaults to pulse on Linux and PortAudio elsewhere; PortAudio
 * only records the default input.
 */
export function startMic(
  opts: { source?: string | null; backend?: MicBackend; rateHz?: number; maxMs?: number } = {},
): Promise<MicSession> {
  const backend = opts.backend ?? (Deno.build.os === "linux" ? "pulse" : "portaudio");
  if (backend === "portaudio" && opts.source) {
    return Promise.reject(
      new TypeError("the portaudio microphone records the default input only (no source)"),
    );
  }
  const rateHz = opts.rateHz ?? 48_000;
  const maxMs = Math.min(opts.maxMs ?? MIC_MAX_MS, MIC_MAX_MS);
  const worker = new Worker(new URL("./mic_worker.ts", import.meta.url), { type: "module" });
  const send = (m: ToMicWorker) => worker.postMessage(m);

  return new Promise<MicSession>((resolveStart, rejectStart) => {
    let stopped: ((m: Extract<FromMicWorker, { type: "stopped" }>) => void) | null = null;
    let failed: ((e: Error) => void) | null = null;
    const finished = new Promise<Extract<FromMicWorker, { type: "stopped" }>>((res, rej) => {
      stopped = res;
      failed = rej;
    });
    finished.catch(() => {}); // surfaced by stop()
    let started = false;
    const fail = (text: string) => {
      const err = new AudioDeviceError(text);
      worker.terminate();
      if (!started) rejectStart(err);
      else failed!(err);
    };
    worker.onmessage = (ev: MessageEvent<FromMicWorker>) => {
      const m = ev.data;
      if (m.type === "error") fail(m.text);
      else if (m.type === "stopped") stopped!(m);
      else if (m.type === "started") {
        started = true;
        let stopping: Promise<MicRecording> | null = null;
        resolveStart({
          source: m.source,
          rateHz: m.rateHz,
          stop() {
            stopping ??= (async () => {
              send({ type: "stop" });
              const done = await finished;
              worker.terminate();
              return makeRecording(
                m.source,
                m.rateHz,
                done.samples,
                done.observations,
                done.endedBy,
              );
            })();
            return stopping;
          },
        });
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      fail(`The microphone failed: ${e.message}`);
    };
    send({ type: "start", backend, source: opts.source ?? null, rateHz, maxMs });
  });
}

function makeRecording(
  source: string,
  rateHz: number,
  samples: Float32Array,
  observations: Float64Array,
  endedBy?: string,
): MicRecording {
  const fit = fitCaptureClock(observations, rateHz);
  if (!fit) {
    throw new AudioDeviceError(
      `The microphone (${source}) gave no timing: recorded ${
        (samples.length / rateHz).toFixed(1)
      } s without the reports needed to place it`,
    );
  }
  return {
    rateHz,
    samples,
    source,
    localMsOf: (i) => fitMs(fit, i),
    indexAt: (ms) => fit.refFrame + (ms - fit.refMs) * fit.framesPerMs,
    measuredRateHz: fit.framesPerMs * 1000,
    fitRmsMs: fit.rmsMs,
    timingReports: fit.kept,
    warning: endedBy && endedBy[0].toUpperCase() + endedBy.slice(1),
  };
}

export interface CaptureFit {
  /** Sample `refFrame` was captured at local `refMs`; `framesPerMs` is the measured rate. */
  refFrame: number;
  refMs: number;
  framesPerMs: number;
  /** RMS of all reports (outliers aside) around the line (ms): how late they ran. */
  rmsMs: number;
  /** Reports the line was fitted to (the earliest slice). */
  kept: number;
}

/**
 * The line "sample index → local ms captured" through capture reports, pairs (frame, localMs).
 * Null without reports. Pure.
 *
 * A report can be late — samples held in a buffer the server does not count, or a report
 * naming the end of a block delivered at once — but never early. Measured here: from a sink's
 * monitor half the reports are 4.9 ms late (samples waiting in the monitor's rewind queue) and
 * the others exact to 0.02 ms; from a source remapping a monitor each names the end of a 10 ms
 * block, late by 0–10 ms. Least squares through such reports is tilted by which of them the
 * polling happened to catch (±100 ppm over 6 s, measured). So the line follows the earliest
 * reports: a slice 0.25 ms either side of the 5th percentile of the residuals, refitted by
 * least squares until it settles. For a capture card whose reports scatter symmetrically
 * (sd ~0.1 ms) that is most of them, and the line barely moves.
 *
 * First, gross outliers go (the first reports while a stream starts): points more than 3 RMS
 * and 0.5 ms off the least-squares line. Under 1 s of reports: the nominal rate.
 */
export function fitCaptureClock(pairs: Float64Array, nominalRateHz: number): CaptureFit | null {
  if (pairs.length < 2) return null;
  // Centred on the first report so that the sums keep their precision (local ms ~1.7e12).
  const f0 = pairs[0], t0 = pairs[1];
  let pts: Pt[] = [];
  for (let k = 0; k + 1 < pairs.length; k += 2) {
    pts.push({ f: pairs[k] - f0, t: pairs[k + 1] - t0 });
  }
  const nominal = nominalRateHz / 1000;
  const fit = (p: Pt[]) => {
    const l = leastSquares(p);
    const spanMs = p[p.length - 1].t - p[0].t;
    // Too short a baseline, or a slope over 1 % off nominal (a broken report, not a crystal).
    const ok = spanMs >= 1000 && Math.abs(1 / l.msPerFrame / nominal - 1) < 0.01;
    return ok ? l : throughMean(p, 1 / nominal);
  };

  let line = fit(pts);
  for (let round = 0; round < 10; round++) {
    const limit = Math.max(3 * rms(pts, line), 0.5);
    const kept = pts.filter((p) => Math.abs(residual(p, line)) <= limit);
    if (kept.length === pts.length || kept.length < 3) break;
    pts = kept;
    line = fit(pts);
  }
  let slice = pts;
  for (let round = 0; round < 10 && pts.length >= 20; round++) {
    const r = pts.map((p) => residual(p, line));
    const base = [...r].sort((a, b) => a - b)[Math.floor(r.length * 0.05)];
    const next = pts.filter((_, i) => Math.abs(r[i] - base) <= EARLIEST_SLICE_MS);
    if (next.length < 10) break;
    const settled = next.length === slice.length && next.every((p, i) => p === slice[i]);
    slice = next;
    line = fit(slice);
    if (settled) break;
  }
  return {
    refFrame: f0,
    refMs: t0 + line.atZeroMs,
    framesPerMs: 1 / line.msPerFrame,
    rmsMs: rms(pts, line),
    kept: slice.length,
  };
}

/** Half-width of the slice of earliest reports the line is fitted to (ms). */
const EARLIEST_SLICE_MS = 0.25;

const fitMs = (fit: CaptureFit, frame: number) =>
  fit.refMs + (frame - fit.refFrame) / fit.framesPerMs;

interface Pt {
  f: number;
  t: number;
}
/** t = atZeroMs + f · msPerFrame */
interface Line {
  atZeroMs: number;
  msPerFrame: number;
}

const residual = (p: Pt, l: Line) => p.t - (l.atZeroMs + p.f * l.msPerFrame);

function rms(pts: Pt[], l: Line): number {
  let s = 0;
  for (const p of pts) s += residual(p, l) ** 2;
  return Math.sqrt(s / pts.length);
}

function throughMean(pts: Pt[], msPerFrame: number): Line {
  let mf = 0, mt = 0;
  for (const p of pts) {
    mf += p.f;
    mt += p.t;
  }
  return { msPerFrame, atZeroMs: (mt - mf * msPerFrame) / pts.length };
}

function leastSquares(pts: Pt[]): Line {
  const n = pts.length;
  let mf = 0, mt = 0;
  for (const p of pts) {
    mf += p.f;
    mt += p.t;
  }
  mf /= n;
  mt /= n;
  let sff = 0, sft = 0;
  for (const p of pts) {
    sff += (p.f - mf) ** 2;
    sft += (p.f - mf) * (p.t - mt);
  }
  const msPerFrame = sft / sff;
  return { msPerFrame, atZeroMs: mt - mf * msPerFrame };
}

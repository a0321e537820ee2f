/**
 * Calibration by the host's microphone: every device plays the probe (audio/arrival.ts) at its
 * own host time, one after another, while the host records; each arrival is found in the one
 * recording, and speaker delays are set so that every device is heard at the same moment *at
 * the microphone*. Only differences between arrivals matter, so the microphone's own latency
 * cancels out; its clock rate does not, which is why the recording maps samples to time by a
 * fit (audio/mic.ts).
 *
 * This module is the arithmetic: the plan (who plays when) and the verdict (what to set). Pure,
 * so it is tested on synthetic recordings; `session/host.ts` does the I/O.
 */
import { findArrival, heard, makeChirp, PROBE } from "../audio/arrival.ts";
import type { CalibratedDevice } from "./commands.ts";
import { MAX_SPEAKER_DELAY_MS } from "./device_settings.ts";

/** From the command to the first probe: more than any device's schedule lead (a browser's ~0.35 s). */
export const CALIBRATION_LEAD_MS = 1000;
/**
 * Between two devices' probes. A probe is searched from 20 ms before its time to
 * {@link MAX_LATENCY_MS} after, so one device's sound never falls in the next one's span.
 */
export const PROBE_SPACING_MS = 1250;
/** The latest a probe may arrive after its time and still be found (a slow Bluetooth link). */
export const MAX_LATENCY_MS = PROBE_SPACING_MS - PROBE.durationMs - 50;
/** Recording kept after the last probe's span, for the microphone's own latency. */
const TAIL_MS = 300;

export interface CalibrationDevice {
  name: string;
  host: boolean;
  /** The speaker delay the device has now (it shifts the probe, as it shifts music). */
  delayMs: number;
}

export interface PlannedProbe extends CalibrationDevice {
  atHostMs: number;
}

export interface CalibrationPlan {
  probes: PlannedProbe[];
  /** Host time by which the recording holds every probe's span. */
  endHostMs: number;
}

/** The host first (the reference), then the others in the order given. */
export function planCalibration(devices: CalibrationDevice[], nowHostMs: number): CalibrationPlan {
  const ordered = [...devices.filter((d) => d.host), ...devices.filter((d) => !d.host)];
  const start = nowHostMs + CALIBRATION_LEAD_MS;
  const probes = ordered.map((d, i) => ({ ...d, atHostMs: start + i * PROBE_SPACING_MS }));
  const last = probes[probes.length - 1]?.atHostMs ?? start;
  return { probes, endHostMs: last + MAX_LATENCY_MS + PROBE.durationMs + TAIL_MS };
}

/** A recording as calibration sees it: mono samples and the host time of each. */
export interface HeardRecording {
  rateHz: number;
  samples: Float32Array;
  /** Fractional sample index captured at host time `hostMs`. */
  indexAt(hostMs: number): number;
  /** Host time at which sample `i` was captured. */
  hostMsOf(i: number): number;
}

export interface Measured extends PlannedProbe {
  /** Host time at which the probe reached the microphone, or null when it was not heard. */
  arrivalHostMs: number | null;
  confidence: number;
}

/** Finds each planned probe in the recording. */
export function measureProbes(rec: HeardRecording, plan: CalibrationPlan): Measured[] {
  const probe = makeChirp(rec.rateHz);
  return plan.probes.map((p) => {
    const a = findArrival(rec.samples, probe, {
      from: rec.indexAt(p.atHostMs - 20),
      to: rec.indexAt(p.atHostMs + MAX_LATENCY_MS),
    });
    const ok = heard(a);
    return {
      ...p,
      arrivalHostMs: ok ? rec.hostMsOf(a.sample) : null,
      confidence: a ? Math.round(a.match * 100) / 100 : 0,
    };
  });
}

export type Verdict =
  | { ok: true; devices: CalibratedDevice[] }
  | { ok: false; message: string; devices: CalibratedDevice[] };

/**
 * What to set. A device's *raw* latency is how late its probe arrived plus the speaker delay it
 * already had (the delay made it play that much early). Calibrating everyone, the quickest
 * device gets no delay and each other one its excess over it. Calibrating one peer (`only`),
 * the others stay as they are and that peer is moved to meet the host.
 * Refuses, changing nothing, when any probe was not heard or a delay would be out of range.
 */
export function verdict(measured: Measured[], only?: string): Verdict {
  const raw = (m: Measured) =>
    m.arrivalHostMs === null ? null : m.arrivalHostMs - m.atHostMs + m.delayMs;
  const heardOnes = measured.filter((m) => m.arrivalHostMs !== null);
  const quickest = heardOnes.length ? Math.min(...heardOnes.map((m) => raw(m)!)) : 0;
  const host = measured.find((m) => m.host);
  const target = (m: Measured): number => {
    if (only === undefined) return raw(m)! - quickest;
    if (m.name !== only || !host || host.arrivalHostMs === null) return m.delayMs;
    // Heard when the host is: raw − delay = host's raw − host's delay.
    return raw(m)! - (raw(host)! - host.delayMs);
  };
  const devices: CalibratedDevice[] = measured.map((m) => ({
    name: m.name,
    host: m.host,
    heard: m.arrivalHostMs !== null,
    latencyMs: m.arrivalHostMs === null ? null : round2(raw(m)! - quickest),
    confidence: m.confidence,
    delayBeforeMs: m.delayMs,
    delayMs: m.arrivalHostMs === null ? m.delayMs : round2(target(m)),
  }));

  const unheard = devices.filter((d) => !d.heard).map((d) => d.name);
  if (unheard.length) {
    const kept = devices.map((d) => ({ ...d, delayMs: d.delayBeforeMs }));
    return {
      ok: false,
      devices: kept,
      message: `Calibration changed nothing: the microphone did not hear ${list(unheard)} ` +
        `(muted, too quiet, too far or too noisy). Turn ${
          unheard.length > 1 ? "them" : "it"
        } up, bring the microphone closer and try again.`,
    };
  }
  const early = devices.find((d) => d.delayMs < 0);
  if (early) {
    return {
      ok: false,
      devices: devices.map((d) => ({ ...d, delayMs: d.delayBeforeMs })),
      message: `Calibration changed nothing: ${early.name} is heard ${
        (-early.delayMs).toFixed(1)
      } ms before the host even with no speaker delay. Calibrate all devices instead.`,
    };
  }
  const tooLate = devices.find((d) => d.delayMs > MAX_SPEAKER_DELAY_MS);
  if (tooLate) {
    return {
      ok: false,
      devices: devices.map((d) => ({ ...d, delayMs: d.delayBeforeMs })),
      message: `Calibration changed nothing: ${tooLate.name} is heard ${
        tooLate.delayMs.toFixed(0)
      } ms after the others, more than the ${MAX_SPEAKER_DELAY_MS} ms a speaker delay can make up.`,
    };
  }
  return { ok: true, devices };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function list(names: string[]): string {
  return names.length < 2
    ? names.join("")
    : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

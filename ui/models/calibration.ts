import { signal } from "@preact/signals";
import type { CalibratedDevice } from "../../session/commands.ts";

/**
 * Where the host's calibration is. `running` keeps the host time it was seen at, so the
 * progress bar is derived from the clock each frame rather than ticked by events.
 */
export type CalibrationState =
  | { state: "idle" }
  | { state: "running"; devices: string[]; startedAtMs: number; expectedMs: number }
  | { state: "done"; devices: CalibratedDevice[]; tookMs: number }
  | { state: "refused"; message: string; devices: CalibratedDevice[] };

/**
 * The bar never claims to be finished: it stops here until the engine says `done`, since
 * `expectedMs` is an estimate (a slow Bluetooth link makes the last probe's span longer).
 */
export const MAX_RUNNING_FRACTION = 0.95;

export function createCalibrationModel() {
  return { state: signal<CalibrationState>({ state: "idle" }) };
}
export type CalibrationModel = ReturnType<typeof createCalibrationModel>;

/** How far along a running calibration is at host time `nowMs` (0..0.95); 1 once done. */
export function calibrationProgress(c: CalibrationState, nowMs: number): number {
  if (c.state === "done") return 1;
  if (c.state !== "running" || c.expectedMs <= 0) return 0;
  const f = (nowMs - c.startedAtMs) / c.expectedMs;
  return Math.max(0, Math.min(MAX_RUNNING_FRACTION, f));
}

/**
 * Why the host cannot calibrate now, as a sentence for the button's title and hint, or null
 * when it can.
 */
export function calibrationBlocker(c: CalibrationState, peers: number): string | null {
  if (c.state === "running") return "Calibration is running.";
  if (peers < 1) return "Calibration needs at least one other device.";
  return null;
}

/** "Listening… Alex, Sam, Kim — about 6 s" */
export function runningLine(devices: string[], expectedMs: number): string {
  const sec = Math.max(1, Math.round(expectedMs / 1000));
  return `Listening… ${devices.join(", ")} — about ${sec} s`;
}

/** One sentence on what a finished calibration achieved. */
export function doneSentence(devices: CalibratedDevice[]): string {
  const n = devices.length;
  const heard = devices.filter((d) => d.heard).length;
  const changed = devices.some((d) => d.delayMs !== d.delayBeforeMs);
  if (heard < n) {
    const missed = devices.filter((d) => !d.heard).map((d) => d.name).join(", ");
    return `${heard} of ${n} devices now meet at the microphone; not heard: ${missed}.`;
  }
  const all = n === 1 ? "The device" : n === 2 ? "Both devices" : `All ${n} devices`;
  return changed
    ? `${all} now meet${n === 1 ? "s" : ""} at the microphone.`
    : `${all} already met at the microphone; no delay changed.`;
}

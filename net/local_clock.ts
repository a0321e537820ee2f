import { realNowMs } from "../audio/sink.ts";

/**
 * This process's clock. `--sim-clock-offset-ms` / `--sim-clock-skew-ppm` (testing aids) make it
 * wrong on purpose: on one machine every process shares the true time, so without them clock
 * sync would never really be exercised. Every consumer of time takes a LocalClock.
 */
export interface SimClock {
  offsetMs: number;
  skewPpm: number;
  /** Real time at which the skew term is zero. */
  refMs: number;
}

export interface LocalClock {
  now(): number;
  /** Local time at real time `realMs` (real = what sinks report). */
  fromReal(realMs: number): number;
  toReal(localMs: number): number;
  readonly sim: SimClock;
}

export function makeLocalClock(sim: Partial<SimClock> = {}, real = realNowMs): LocalClock {
  const s: SimClock = { offsetMs: 0, skewPpm: 0, refMs: real(), ...sim };
  const k = s.skewPpm * 1e-6;
  const fromReal = (r: number) => r + s.offsetMs + (r - s.refMs) * k;
  return {
    sim: s,
    now: () => fromReal(real()),
    fromReal,
    toReal: (l: number) => s.refMs + (l - s.offsetMs - s.refMs) / (1 + k),
  };
}

/** A linear map local → host time, as estimated by the clock filter. Identity on the host. */
export interface HostMap {
  offsetMs: number;
  driftPpm: number;
  refLocalMs: number;
}
export const IDENTITY_MAP: HostMap = { offsetMs: 0, driftPpm: 0, refLocalMs: 0 };

export function localToHost(m: HostMap, localMs: number): number {
  return localMs + m.offsetMs + (localMs - m.refLocalMs) * m.driftPpm * 1e-6;
}
/** Inverse of {@link localToHost}, solved around `refLocalMs` to keep precision at epoch scale. */
export function hostToLocal(m: HostMap, hostMs: number): number {
  return m.refLocalMs + (hostMs - m.refLocalMs - m.offsetMs) / (1 + m.driftPpm * 1e-6);
}

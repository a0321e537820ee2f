/**
 * Drift control: keeps a device's playback position on the host timeline. Every block the
 * player measures its error (where it is minus where the clock maps say it should be) and asks
 * this controller what to do. Pure and stateless apart from statistics, so it is tested with
 * simulated devices and clocks.
 *
 * Tiers (the figures come from the sync benchmark, see README "Sync benchmark"):
 * - |error| < deadband: hold. The error estimate itself wobbles by a few hundredths of a ms
 *   (control error p95 0.04 ms on the host, 0.08 ms on peers whose clock map also moves);
 *   chasing that would only modulate the rate for nothing.
 * - up to the resync threshold: resample slightly faster or slower, proportionally to the
 *   error (time constant `horizonMs`), capped at `maxNudge`. Clock-map updates move the target
 *   by tenths of a ms at most, which this removes within a second or two, inaudibly: 1000 ppm
 *   is 1.7 cents of pitch, below what anyone hears on music.
 * - beyond `resyncMs`: slewing at 1000 ppm would take > 20 s, so jump to the right position
 *   with a short crossfade. Only a clock jump or a stalled device gets here.
 */
export interface DriftLimits {
  deadbandMs: number;
  horizonMs: number;
  maxNudge: number;
  resyncMs: number;
}

export const DRIFT: DriftLimits = {
  deadbandMs: 0.02,
  horizonMs: 1000,
  maxNudge: 0.001,
  resyncMs: 20,
};

/**
 * For a web page's output: its placement is re-estimated from reports that jump by several ms
 * when the browser's audio thread stalls, and slewing 5–20 ms away at 1000 ppm would take
 * seconds. So jump sooner (a 2 ms crossfade) and slew twice as fast (0.2 %, still far below
 * the ~0.5 % heard as vibrato).
 */
export const BROWSER_DRIFT: DriftLimits = {
  deadbandMs: 0.05,
  horizonMs: 500,
  maxNudge: 0.002,
  resyncMs: 5,
};

export type DriftDecision =
  | { action: "hold" }
  | { action: "nudge"; nudge: number }
  | { action: "resync" };

export class DriftController {
  readonly stats = { errorMs: 0, nudgePpm: 0, resyncs: 0 };

  constructor(readonly limits: DriftLimits = DRIFT) {}

  /**
   * `errorMs`: current position minus ideal (positive = ahead). `realign` asks for a jump even
   * below the resync threshold (a deliberate change such as a new speaker delay).
   */
  decide(errorMs: number, realign = false): DriftDecision {
    const l = this.limits;
    this.stats.errorMs = errorMs;
    const abs = Math.abs(errorMs);
    if (abs > l.resyncMs || (realign && abs > l.deadbandMs)) {
      this.stats.resyncs++;
      this.stats.nudgePpm = 0;
      return { action: "resync" };
    }
    if (abs < l.deadbandMs) {
      this.stats.nudgePpm = 0;
      return { action: "hold" };
    }
    const nudge = Math.max(-l.maxNudge, Math.min(l.maxNudge, -errorMs / l.horizonMs));
    this.stats.nudgePpm = nudge * 1e6;
    return { action: "nudge", nudge };
  }
}

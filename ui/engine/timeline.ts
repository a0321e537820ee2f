/**
 * When an AudioContext's frames are heard, on this page's clock. Browsers report it in two ways:
 * `getOutputTimestamp()` (a context time and the `performance.now()` at which it leaves the
 * speaker; output latency included) and `currentTime` read beside `performance.now()` (plus the
 * latency the browser admits to). Neither is steady: Chromium's timestamp wanders by tens of ms
 * for the first seconds and jumps under load, Firefox's is noisy to a few ms, WebKitGTK's is
 * useless (design §6). So every reading is a sample, and the map is a robust fit over the last
 * seconds: medians, not means, so a reading that jumped alone never moves it; a jump that lasts
 * (the device really moved) is adopted within a few samples.
 *
 * Pure: samples come in as numbers; tests drive it with simulated devices.
 */

export interface TimelineSample {
  /** Context time (s). */
  ctxSec: number;
  /** Page time (ms, `performance.now()` scale) at which `ctxSec` is heard. */
  heardMs: number;
}

export interface TimelineOptions {
  /** Samples older than this (context time) are forgotten. */
  windowSec?: number;
  /** Consecutive samples this far (ms) from the fit, all on one side, mean the device moved. */
  jumpMs?: number;
  jumpCount?: number;
  /** Largest believable rate difference between the context's clock and the page's. */
  maxSlopePpm?: number;
  /**
   * Which part of the readings the map follows: 0.5 (the median) for readings whose noise is
   * symmetric (an output timestamp); lower for `currentTime` read beside `performance.now()`,
   * which only ever reads late (the clock advances in blocks), so its lower edge is the truth.
   */
  quantile?: number;
}

/** A fitted map: heard(ctx) = ctxSec·1000·(1 + slope) + offset, anchored at `refSec`. */
export interface TimelineFit {
  refSec: number;
  /** Page time at which `refSec` is heard. */
  heardAtRefMs: number;
  /** (page ms per context ms) − 1. */
  slope: number;
  /** Median absolute residual of the samples around their median (ms): how noisy they are. */
  spreadMs: number;
  /** Median of the readings above the fitted line (ms): 0 when fitting the median. */
  centreMs: number;
  samples: number;
}

/** The q-quantile of `xs` (linear between neighbours). */
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const i = Math.floor(at);
  return i + 1 < s.length ? s[i] + (s[i + 1] - s[i]) * (at - i) : s[i];
};
const median = (xs: number[]) => quantile(xs, 0.5);

export class ContextTimeline {
  readonly #o: Required<TimelineOptions>;
  #samples: TimelineSample[] = [];
  #fit: TimelineFit | null = null;
  #run = 0;
  #runSign = 0;
  jumps = 0;

  constructor(options: TimelineOptions = {}) {
    this.#o = {
      windowSec: 8,
      jumpMs: 4,
      jumpCount: 4,
      maxSlopePpm: 1000,
      quantile: 0.5,
      ...options,
    };
  }

  get fit(): TimelineFit | null {
    return this.#fit;
  }

  /** Adds a reading; returns true when it was taken as the device having moved (a re-anchor). */
  add(s: TimelineSample): boolean {
    if (!Number.isFinite(s.ctxSec) || !Number.isFinite(s.heardMs) || s.ctxSec <= 0) return false;
    const last = this.#samples.at(-1);
    // The context restarted or was replaced: nothing before says anything about now.
    if (last && s.ctxSec < last.ctxSec) this.reset();
    let jumped = false;
    if (this.#fit && this.#samples.length >= 8) {
      // Measured from the readings' centre, where their noise is symmetric.
      const r = s.heardMs - this.heardMs(s.ctxSec) - this.#fit.centreMs;
      const sign = Math.abs(r) > Math.max(this.#o.jumpMs, 4 * this.#fit.spreadMs)
        ? Math.sign(r)
        : 0;
      if (sign !== 0 && sign === this.#runSign) this.#run++;
      else this.#run = sign === 0 ? 0 : 1;
      this.#runSign = sign;
      if (this.#run >= this.#o.jumpCount) {
        // Keep only the run: the fit starts over from where the device is now.
        this.#samples = this.#samples.slice(-(this.#run - 1));
        this.#run = 0;
        this.jumps++;
        jumped = true;
      }
    }
    this.#samples.push(s);
    const oldest = s.ctxSec - this.#o.windowSec;
    while (this.#samples.length > 2 && this.#samples[0].ctxSec < oldest) this.#samples.shift();
    this.#refit();
    return jumped;
  }

  reset(): void {
    this.#samples = [];
    this.#fit = null;
    this.#run = 0;
    this.#runSign = 0;
  }

  /** Page time (ms) at which context time `ctxSec` is heard; needs at least one sample. */
  heardMs(ctxSec: number): number {
    const f = this.#fit!;
    return f.heardAtRefMs + (ctxSec - f.refSec) * 1000 * (1 + f.slope);
  }

  #refit() {
    const ss = this.#samples;
    const n = ss.length;
    if (n === 0) return;
    const refSec = ss[n - 1].ctxSec;
    // Residuals against a slope of zero; the slope comes from the halves' quantiles, which no
    // single reading can move.
    const q = this.#o.quantile;
    const d = ss.map((s) => s.heardMs - s.ctxSec * 1000);
    let slope = 0;
    if (n >= 6) {
      const h = n >> 1;
      const span = median(ss.slice(h).map((s) => s.ctxSec)) -
        median(ss.slice(0, h).map((s) => s.ctxSec));
      if (span >= 2) {
        slope = (quantile(d.slice(h), q) - quantile(d.slice(0, h), q)) / (span * 1000);
        const max = this.#o.maxSlopePpm * 1e-6;
        slope = Math.max(-max, Math.min(max, slope));
      }
    }
    const at = ss.map((s, i) => d[i] - (s.ctxSec - refSec) * 1000 * slope);
    const offset = quantile(at, q);
    const centre = median(at);
    const spreadMs = median(at.map((x) => Math.abs(x - centre)));
    this.#fit = {
      refSec,
      heardAtRefMs: refSec * 1000 + offset,
      slope,
      spreadMs,
      centreMs: centre - offset,
      samples: n,
    };
  }
}

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

export interface StepTimelineOptions {
  /** The offset is the median of the current segment's readings over this much context time. */
  levelSec?: number;
  /** Consecutive readings at least this far (ms) from the fit, all on one side, are a step. */
  stepMs?: number;
  stepCount?: number;
  /** The rate is fitted over this much context time. */
  slopeWindowSec?: number;
  maxSlopePpm?: number;
}

interface StepReading {
  ctxSec: number;
  heardMs: number;
}

/** One second of readings, reduced to medians; weighted by how steady they were. */
interface Bucket {
  x: number;
  y: number;
  w: number;
  segment: number;
}

/**
 * When a context's frames are heard, from output timestamps that are exact but for real steps.
 * Chromium's `getOutputTimestamp()` reads within ~0.1 ms of the truth, and when it moves it
 * moves for good: a late render block or a busy audio process delays every later frame by
 * 0.5–30 ms, and the recording moves with it (measured against the bus recording). A fit over
 * a window (like {@link ContextTimeline}) tilts across such a step: its rate absorbs the step
 * until the step leaves the window, misplacing the sound by milliseconds for seconds. So here
 * the map is a level plus one rate: the level is the median of the last second of readings
 * since the last step, a step is a run of readings off to one side, and the rate (the sound
 * card's crystal against the page's clock, fixed) is fitted across every segment of the last
 * minute, each segment with a level of its own.
 *
 * Pure: samples come in as numbers; tests drive it with simulated devices.
 */
export class StepTimeline {
  readonly #o: Required<StepTimelineOptions>;
  /** The current segment's readings within `levelSec`. */
  #recent: StepReading[] = [];
  /** The second of readings being gathered into a bucket. */
  #open: StepReading[] = [];
  #buckets: Bucket[] = [];
  #segment = 0;
  #run: StepReading[] = [];
  #runSign = 0;
  #count = 0;
  #slope = 0;
  #fit: TimelineFit | null = null;
  jumps = 0;

  constructor(options: StepTimelineOptions = {}) {
    this.#o = {
      levelSec: 1,
      stepMs: 0.5,
      stepCount: 5,
      slopeWindowSec: 60,
      maxSlopePpm: 1000,
      ...options,
    };
  }

  get fit(): TimelineFit | null {
    return this.#fit;
  }

  /** Adds a reading; returns true when it completed a step (the level starts over). */
  add(s: TimelineSample): boolean {
    if (!Number.isFinite(s.ctxSec) || !Number.isFinite(s.heardMs) || s.ctxSec <= 0) return false;
    const last = this.#recent.at(-1);
    if (last && s.ctxSec < last.ctxSec) this.reset();
    const r: StepReading = { ctxSec: s.ctxSec, heardMs: s.heardMs };
    let stepped = false;
    const fit = this.#fit;
    if (fit) {
      const off = r.heardMs - this.heardMs(r.ctxSec);
      const sign = Math.abs(off) > Math.max(this.#o.stepMs, 4 * fit.spreadMs) ? Math.sign(off) : 0;
      if (sign !== 0 && sign === this.#runSign) this.#run.push(r);
      else this.#run = sign === 0 ? [] : [r];
      this.#runSign = sign;
      if (this.#run.length >= this.#o.stepCount) {
        // The readings before the run close the old segment; the run starts the new one.
        const run = new Set(this.#run.slice(0, -1));
        this.#open = this.#open.filter((x) => !run.has(x));
        this.#closeBucket();
        this.#segment++;
        this.#recent = this.#run.slice(0, -1);
        this.#open = [...this.#recent];
        this.#run = [];
        this.#runSign = 0;
        this.jumps++;
        stepped = true;
      }
    }
    this.#count++;
    this.#recent.push(r);
    this.#open.push(r);
    while (this.#recent[0].ctxSec < r.ctxSec - this.#o.levelSec) this.#recent.shift();
    if (r.ctxSec - this.#open[0].ctxSec >= 1) this.#closeBucket();
    this.#refit();
    return stepped;
  }

  reset(): void {
    this.#recent = [];
    this.#segment = 0;
    this.#open = [];
    this.#buckets = [];
    this.#run = [];
    this.#runSign = 0;
    this.#count = 0;
    this.#slope = 0;
    this.#fit = null;
  }

  /** Page time (ms) at which context time `ctxSec` is heard; needs at least one sample. */
  heardMs(ctxSec: number): number {
    const f = this.#fit!;
    return f.heardAtRefMs + (ctxSec - f.refSec) * 1000 * (1 + f.slope);
  }

  #closeBucket() {
    const rs = this.#open;
    this.#open = [];
    if (rs.length < 5) return;
    const d = rs.map((r) => r.heardMs - r.ctxSec * 1000);
    const y = median(d);
    const mad = median(d.map((v) => Math.abs(v - y)));
    this.#buckets.push({
      x: median(rs.map((r) => r.ctxSec)),
      y,
      w: 1 / (0.05 + mad) ** 2,
      segment: this.#segment,
    });
    const oldest = rs.at(-1)!.ctxSec - this.#o.slopeWindowSec;
    while (this.#buckets.length && this.#buckets[0].x < oldest) this.#buckets.shift();
    this.#slope = this.#fitSlope();
  }

  /** One rate through every segment, each with its own level (weighted least squares). */
  #fitSlope(): number {
    const segments = new Map<number, Bucket[]>();
    for (const b of this.#buckets) {
      const list = segments.get(b.segment);
      if (list) list.push(b);
      else segments.set(b.segment, [b]);
    }
    let num = 0, den = 0, weight = 0;
    for (const bs of segments.values()) {
      if (bs.length < 2) continue;
      const w = bs.reduce((a, b) => a + b.w, 0);
      const mx = bs.reduce((a, b) => a + b.w * b.x, 0) / w;
      const my = bs.reduce((a, b) => a + b.w * b.y, 0) / w;
      for (const b of bs) {
        num += b.w * (b.x - mx) * (b.y - my);
        den += b.w * (b.x - mx) ** 2;
      }
      weight += w;
    }
    // Seconds of spread around the segments' centres: too little says nothing about a rate.
    if (weight === 0 || den / weight < 1) return 0;
    const max = this.#o.maxSlopePpm * 1e-6;
    return Math.max(-max, Math.min(max, num / den / 1000));
  }

  #refit() {
    const rs = this.#recent;
    const slope = this.#slope;
    const refSec = rs.at(-1)!.ctxSec;
    const at = rs.map((r) => r.heardMs - (r.ctxSec - refSec) * 1000 * (1 + slope));
    const level = median(at);
    const spreadMs = median(at.map((x) => Math.abs(x - level)));
    this.#fit = {
      refSec,
      heardAtRefMs: level,
      slope,
      spreadMs,
      centreMs: 0,
      samples: this.#count,
    };
  }
}

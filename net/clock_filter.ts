import { hostToLocal, localToHost } from "./local_clock.ts";

/**
 * Estimates the host's clock from NTP-style exchanges: offset and drift (rate difference)
 * from the best recent samples. Pure: the caller supplies local times, so tests drive it with
 * a fake clock that can drift and jump.
 *
 * Why min-RTT: a sample's offset error is at most half the asymmetric part of its round trip,
 * and queueing only ever adds delay, so the samples with the least RTT are the least wrong.
 * On loopback/veth the lowest-RTT third has an offset SD of ~0.015 ms.
 */

/** One exchange: peer sent at t1, host received at t2 and replied at t3, peer received at t4. */
export interface Exchange {
  t1: number;
  t2: number;
  t3: number;
  t4: number;
}

export interface ClockSample {
  /** Local time at the middle of the exchange. */
  localMs: number;
  /** host − local at `localMs`. */
  offsetMs: number;
  rttMs: number;
  /** The two legs as measured (each includes the offset): t2 − t1 and t4 − t3. */
  outMs?: number;
  backMs?: number;
}

export interface ClockEstimate {
  /** host − local, at local time `refLocalMs`. */
  offsetMs: number;
  /** How much faster the host clock runs than the local one, in parts per million. */
  driftPpm: number;
  refLocalMs: number;
  /** Smallest round trip in the window. */
  rttMs: number;
  /** RMS residual of the chosen samples around the fit: the offset's noise. */
  errorMs: number;
  samples: number;
  locked: boolean;
}

export function sampleFromExchange(e: Exchange): ClockSample {
  return {
    localMs: (e.t1 + e.t4) / 2,
    offsetMs: ((e.t2 - e.t1) + (e.t3 - e.t4)) / 2,
    rttMs: Math.max(0, (e.t4 - e.t1) - (e.t3 - e.t2)),
    outMs: e.t2 - e.t1,
    backMs: e.t4 - e.t3,
  };
}

export interface ClockFilterOptions {
  /** Samples older than this are forgotten. Long enough to see drift, short enough to follow it. */
  windowMs?: number;
  maxSamples?: number;
  /** Fraction of the window (lowest RTT first) that the fit uses. */
  bestFraction?: number;
  /** Samples needed before the estimate counts as locked. */
  lockSamples?: number;
  /** Consecutive low-RTT samples this far (ms) from the fit mean the clock jumped. */
  jumpMs?: number;
  /**
   * Fit the best exchange of every run (spread over the window, outliers left out) with a drift
   * shrunk by the points' scatter from the first samples — made for UDP exchanges from a native
   * process, whose start-up it fixed. False: the lowest-RTT fraction of the whole window, and
   * drift held at 0 until it spans 3 s, which web pages keep: their exchanges go through the
   * server's WebSocket, and the swarm bench's Chromium pairs measured p95 2.3, 10.5 and 29.4 ms
   * with the spread fit, against 0.67, 0.73, 1.35, 1.67 and 14.1 ms without (one sitting; wide
   * either way, so not settled).
   */
  spread?: boolean;
}

export class ClockFilter {
  readonly #o: Required<ClockFilterOptions>;
  #samples: ClockSample[] = [];
  #estimate: ClockEstimate | null = null;
  #suspects: ClockSample[] = [];
  #resets = 0;

  constructor(options: ClockFilterOptions = {}) {
    this.#o = {
      windowMs: 60_000,
      maxSamples: 240,
      bestFraction: 0.2,
      lockSamples: 6,
      jumpMs: 5,
      spread: true,
      ...options,
    };
  }

  /** Times the filter threw its history away because the clock jumped. */
  get resets(): number {
    return this.#resets;
  }

  get estimate(): ClockEstimate | null {
    return this.#estimate;
  }

  /**
   * Adds a sample. Returns "jump" when this sample confirmed a clock jump and the history
   * was replaced, "suspect" when it is held back as a possible jump, else "ok".
   */
  add(s: ClockSample): "ok" | "suspect" | "jump" {
    const est = this.#estimate;
    if (est && est.locked) {
      const predicted = this.offsetAt(s.localMs);
      const goodRtt = s.rttMs <= est.rttMs * 2 + 1;
      const off = Math.abs(s.offsetMs - predicted);
      if (goodRtt && off > Math.max(this.#o.jumpMs, s.rttMs * 2)) {
        this.#suspects.push(s);
        if (this.#suspects.length < 3) return "suspect";
        // Three clean samples agree on a different offset: the clock jumped. Start over.
        this.#samples = this.#suspects;
        this.#suspects = [];
        this.#resets++;
        this.#refit();
        return "jump";
      }
      if (goodRtt) this.#suspects = [];
    }
    this.#samples.push(s);
    const oldest = s.localMs - this.#o.windowMs;
    while (
      this.#samples.length > this.#o.maxSamples ||
      (this.#samples.length > 0 && this.#samples[0].localMs < oldest)
    ) this.#samples.shift();
    this.#refit();
    return "ok";
  }

  /** host − local predicted at local time `localMs`. */
  offsetAt(localMs: number): number {
    return this.toHost(localMs) - localMs;
  }

  toHost(localMs: number): number {
    return this.#estimate ? localToHost(this.#estimate, localMs) : localMs;
  }

  /** Inverse of {@link toHost}; exact for a linear fit. */
  toLocal(hostMs: number): number {
    return this.#estimate ? hostToLocal(this.#estimate, hostMs) : hostMs;
  }

  /**
   * Over a WAN, independent jitter on each leg makes exchanges with both legs near their
   * minimum rare (with ±10 ms uniform jitter, both within 1 ms: 1 in 400), so min-RTT picks
   * samples that are still ms off. Each leg's own minimum is found far sooner, so here the
   * offset is half the difference of the two legs' lower envelopes (per 4 s bin), and drift is
   * the slope of that over the window. Assumes equal minimum delays each way, as NTP does.
   * Returns false (use min-RTT) until there are two bins.
   */
  #refitLegs(all: ClockSample[], ref: number, minRtt: number): boolean {
    const bins = new Map<number, { out: number; back: number; t: number; n: number }>();
    for (const s of all) {
      if (s.outMs === undefined || s.backMs === undefined) continue;
      const k = Math.floor((ref - s.localMs) / LEG_BIN_MS);
      const b = bins.get(k) ?? { out: Infinity, back: Infinity, t: 0, n: 0 };
      b.out = Math.min(b.out, s.outMs);
      b.back = Math.min(b.back, s.backMs);
      b.t += s.localMs;
      b.n++;
      bins.set(k, b);
    }
    const pts = [...bins.values()].filter((b) => b.n >= 4).map((b) => ({
      t: b.t / b.n,
      o: (b.out - b.back) / 2,
    }));
    if (pts.length < 2) return false;
    this.#setEstimate(fitLine(pts, ref, pts.length >= 3), ref, minRtt);
    return true;
  }

  #refit(): void {
    const all = this.#samples;
    if (all.length === 0) {
      this.#estimate = null;
      return;
    }
    const byRtt = [...all].sort((a, b) => a.rttMs - b.rttMs);
    const minRtt = byRtt[0].rttMs;
    // The best of each run of consecutive samples, so that the fit's points span the window
    // (the lowest-RTT fraction overall can sit in one second and leave the drift unseen),
    // then the better 80 % of those, dropping runs where every exchange was slow.
    // Until there are a few runs, the lowest-RTT fraction of all (at least 3) is used.
    const group = Math.max(1, Math.round(1 / this.#o.bestFraction));
    let best: ClockSample[];
    if (all.length < group * 4 || !this.#o.spread) {
      best = byRtt.slice(0, Math.max(Math.min(all.length, 3), Math.ceil(all.length / group)));
    } else {
      const heads: ClockSample[] = [];
      // Whole runs from the newest back: the few oldest left over are not used.
      for (let end = all.length; end >= group; end -= group) {
        let b = all[end - 1];
        for (let j = end - group; j < end - 1; j++) {
          if (all[j].rttMs < b.rttMs) b = all[j];
        }
        heads.push(b);
      }
      heads.sort((a, b) => a.rttMs - b.rttMs);
      best = heads.slice(0, Math.ceil(heads.length * 0.8));
    }
    const n = best.length;
    const ref = all[all.length - 1].localMs;
    if (minRtt > WAN_RTT_MS && this.#refitLegs(all, ref, minRtt)) return;
    // Drift over a short baseline is mostly noise, but holding it at zero until there is a
    // long one costs (skew × age) — 0.3–0.5 ms at 80 ppm before a 3 s baseline. So the slope is
    // shrunk towards zero by how well the samples can tell it apart from a level: a ridge fit
    // with a prior of ±{@link PRIOR_DRIFT_PPM}, weighed against the samples' own scatter.
    let pts = best.map((s) => ({ t: s.localMs, o: s.offsetMs }));
    if (!this.#o.spread) {
      const span = Math.max(...pts.map((p) => p.t)) - Math.min(...pts.map((p) => p.t));
      return this.#setEstimate(fitLine(pts, ref, span >= 3000 && n >= 6), ref, minRtt);
    }
    let free = fitLine(pts, ref, n >= 3);
    // A short round trip does not always mean a true offset (a process busy starting up
    // stamps late): points far from the line by the others' measure are left out.
    if (pts.length >= 5) {
      const dev = (p: { t: number; o: number }) => Math.abs(p.o - lineAt(free, p.t, ref));
      const mad = median(pts.map(dev));
      const keep = pts.filter((p) => dev(p) <= Math.max(3 * mad, 2 * NOISE_FLOOR_MS));
      if (keep.length >= 3 && keep.length < pts.length) {
        pts = keep;
        free = fitLine(pts, ref, true);
      }
    }
    const k = pts.length;
    const scatter = Math.max(NOISE_FLOOR_MS, free.rms * Math.sqrt(k / Math.max(1, k - 2)));
    this.#setEstimate(
      fitLine(pts, ref, k >= 3, (scatter / (PRIOR_DRIFT_PPM * 1e-6)) ** 2),
      ref,
      minRtt,
    );
  }

  #setEstimate(fit: { offset: number; slope: number; rms: number }, ref: number, rtt: number) {
    this.#estimate = {
      offsetMs: fit.offset,
      driftPpm: fit.slope * 1e6,
      refLocalMs: ref,
      rttMs: rtt,
      errorMs: fit.rms,
      samples: this.#samples.length,
      locked: this.#samples.length >= this.#o.lockSamples,
    };
  }
}

/**
 * Least-squares line through offsets `o` at local times `t`, as offset at `ref` and slope
 * (ms per ms); with `withSlope` false, or no spread in time, the slope is held at zero.
 * `ridge` (ms²) pulls the slope towards zero: the samples' variance over the prior slope's.
 */
function fitLine(pts: { t: number; o: number }[], ref: number, withSlope: boolean, ridge = 0) {
  const n = pts.length;
  const mt = pts.reduce((a, p) => a + p.t, 0) / n, mo = pts.reduce((a, p) => a + p.o, 0) / n;
  let sxx = 0, sxy = 0;
  for (const p of pts) {
    sxx += (p.t - mt) ** 2;
    sxy += (p.t - mt) * (p.o - mo);
  }
  const slope = withSlope && sxx > 0 ? sxy / (sxx + ridge) : 0;
  const offset = mo + slope * (ref - mt);
  let ss = 0;
  for (const p of pts) ss += (p.o - (offset + slope * (p.t - ref))) ** 2;
  return { offset, slope, rms: Math.sqrt(ss / n) };
}

function lineAt(fit: { offset: number; slope: number }, t: number, ref: number): number {
  return fit.offset + fit.slope * (t - ref);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Crystal clocks are within ±100 ppm of each other; the bench simulates ±80. */
const PRIOR_DRIFT_PPM = 100;
/** No fit trusts its samples more than this (lowest-RTT offsets on a quiet veth: ~0.015 ms). */
const NOISE_FLOOR_MS = 0.02;
/** Above this round trip, jitter dominates and the per-leg estimate is used. */
const WAN_RTT_MS = 5;
const LEG_BIN_MS = 4000;

/** Traffic light shown for a peer's clock. Documented in README ("Clock status"). */
export function clockColor(
  est: { locked: boolean; errorMs: number; rttMs: number } | null,
  sinceLastSampleMs: number,
): "green" | "yellow" | "red" {
  if (!est || sinceLastSampleMs > 3000 || est.errorMs > 5) return "red";
  if (!est.locked || est.errorMs > 0.5 || est.rttMs > 20) return "yellow";
  return "green";
}

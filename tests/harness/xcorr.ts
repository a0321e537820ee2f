/**
 * Measures the lag between two recorded channels by cross-correlation over sliding windows,
 * with sub-sample precision (parabolic interpolation around the peak). Positive lag: `b` is
 * late relative to `a`. Used by the sync tests and the sync benchmark.
 */
import { fft } from "../../audio/arrival.ts";

/** Lag (samples, fractional) of b relative to a within ±maxLag, and the normalised peak. */
export function lagOf(
  a: Float32Array,
  b: Float32Array,
  maxLag: number,
): { lag: number; peak: number } {
  const n = a.length;
  let size = 1;
  while (size < 2 * n) size <<= 1;
  const ar = new Float64Array(size), ai = new Float64Array(size);
  const br = new Float64Array(size), bi = new Float64Array(size);
  let ea = 0, eb = 0;
  for (let i = 0; i < n; i++) {
    ar[i] = a[i];
    br[i] = b[i];
    ea += a[i] * a[i];
    eb += b[i] * b[i];
  }
  fft(ar, ai, false);
  fft(br, bi, false);
  // corr[k] = Σ a[i]·b[i+k]  →  conj(A)·B
  for (let i = 0; i < size; i++) {
    const r = ar[i] * br[i] + ai[i] * bi[i];
    const im = ar[i] * bi[i] - ai[i] * br[i];
    ar[i] = r;
    ai[i] = im;
  }
  fft(ar, ai, true);
  const at = (k: number) => ar[(k + size) % size];
  let best = 0, bestV = -Infinity;
  for (let k = -maxLag; k <= maxLag; k++) {
    if (at(k) > bestV) {
      bestV = at(k);
      best = k;
    }
  }
  const y0 = at(best - 1), y1 = at(best), y2 = at(best + 1);
  const den = y0 - 2 * y1 + y2;
  const frac = den !== 0 ? (0.5 * (y0 - y2)) / den : 0;
  // The inverse FFT is scaled by 1/size: y1 is the correlation itself.
  return { lag: best + frac, peak: y1 / Math.sqrt(ea * eb || 1) };
}

export interface LagSeries {
  /** Window centre (s from the recording start) and lag (ms) for windows with a clear peak. */
  points: { atSec: number; lagMs: number }[];
}

/** Sliding-window lags between two channels, skipping windows where either is silent. */
export function lagSeries(
  a: Float32Array,
  b: Float32Array,
  opts: { rateHz?: number; windowSec?: number; hopSec?: number; maxLagMs?: number } = {},
): LagSeries {
  const rate = opts.rateHz ?? 48000;
  const win = Math.round((opts.windowSec ?? 0.25) * rate);
  const hop = Math.round((opts.hopSec ?? 0.5) * rate);
  const maxLag = Math.round(((opts.maxLagMs ?? 50) * rate) / 1000);
  const points: LagSeries["points"] = [];
  const rms = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  for (let s = 0; s + win <= Math.min(a.length, b.length); s += hop) {
    const wa = a.subarray(s, s + win), wb = b.subarray(s, s + win);
    if (rms(wa) < 0.01 || rms(wb) < 0.01) continue;
    const { lag, peak } = lagOf(wa, wb, maxLag);
    if (peak < 0.5) continue;
    points.push({ atSec: (s + win / 2) / rate, lagMs: (lag * 1000) / rate });
  }
  return { points };
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/**
 * Where a track begins in a recorded channel: the sample at which the track's first 0.5 s (as
 * the mono mix a mono device records) matches best, searched ±50 ms around `approx`, and how
 * clearly (normalised correlation peak).
 */
export function findTrackStart(
  ch: Float32Array,
  track: { left: Float32Array; right: Float32Array },
  approx: number,
): { at: number; peak: number } {
  const n = 24000, margin = 2400;
  const opening = new Float32Array(n);
  for (let i = 0; i < n; i++) opening[i] = (track.left[i] + track.right[i]) / 2;
  const from = Math.max(0, Math.round(approx) - margin);
  const { lag, peak } = lagOf(opening, ch.subarray(from, from + n), 2 * margin);
  return { at: from + lag, peak };
}

/**
 * Device `k`'s lag behind the host (channel 0) between two recording times (s). Each window is
 * compared with the host's channel moved by the lag it is expected to have: a 0.25 s window
 * correlates poorly with a copy shifted by half its length (120 ms, say), so the search stays
 * within ±40 ms of the expectation. Window times are seconds from `fromSec`.
 */
export function lagsBehind(
  rec: { channels: Float32Array[]; rateHz: number },
  k: number,
  expectMs: number,
  fromSec: number,
  toSec: number,
): { atSec: number; lagMs: number }[] {
  const shift = Math.round((expectMs / 1000) * rec.rateHz);
  const i0 = Math.max(0, Math.round(fromSec * rec.rateHz));
  const i1 = Math.min(rec.channels[0].length - shift, Math.round(toSec * rec.rateHz));
  if (i1 <= i0) return [];
  return lagSeries(
    rec.channels[0].subarray(i0, i1),
    rec.channels[k].subarray(i0 + shift, i1 + shift),
    { maxLagMs: 40, hopSec: 0.25 },
  ).points.map((p) => ({ atSec: p.atSec, lagMs: p.lagMs + expectMs }));
}

/**
 * Where a known signal arrives in a recording: the heart of calibration by microphone. Each
 * device plays the same probe (a logarithmic chirp: its autocorrelation is one narrow peak, and
 * it survives a phone speaker's missing bass and a room's echoes), the host records, and the
 * arrival of each is found by cross-correlation (FFT, then a parabola through the peak for a
 * fraction of a sample).
 *
 * In a room the strongest copy is not always the first: a wall can add a reflection as loud
 * as the direct sound. The arrival is the earliest peak within half of the strongest, and the
 * answer says how sure it is: the normalised correlation at the peak (1 = the probe exactly,
 * scaled) and how far it stands above the rest of the correlation (peak to the 99th
 * percentile of |correlation|). A probe that is not heard — muted, too quiet, drowned — gives
 * low figures, and the caller refuses rather than guesses. Pure: no I/O.
 */

export interface ChirpOptions {
  durationMs?: number;
  fromHz?: number;
  toHz?: number;
  /** Raised-cosine fade at each end (ms): no click, which would correlate with anything. */
  fadeMs?: number;
  amplitude?: number;
}

/** The probe every device plays for calibration (see {@link chirpAt}). */
export const PROBE: Required<ChirpOptions> = {
  durationMs: 250,
  fromHz: 700,
  toHz: 7000,
  fadeMs: 10,
  amplitude: 0.5,
};

/**
 * The sweep's value `tMs` after its start (0 outside it). A function of time, not of samples,
 * so a device places it to the fraction of a frame, as it places music.
 */
export function chirpAt(tMs: number, opts: ChirpOptions = {}): number {
  const { durationMs, fromHz, toHz, fadeMs, amplitude } = { ...PROBE, ...opts };
  if (tMs < 0 || tMs >= durationMs) return 0;
  const t = tMs / 1000, T = durationMs / 1000;
  const k = Math.log(toHz / fromHz);
  // Phase of a sweep whose frequency goes from fromHz to toHz exponentially over T.
  const phase = (2 * Math.PI * fromHz * T / k) * (Math.exp((t / T) * k) - 1);
  const edge = Math.min(tMs, durationMs - tMs);
  const gain = edge < fadeMs ? 0.5 - 0.5 * Math.cos((Math.PI * edge) / fadeMs) : 1;
  return amplitude * gain * Math.sin(phase);
}

/** The sweep sampled at `rateHz`, mono. */
export function makeChirp(rateHz: number, opts: ChirpOptions = {}): Float32Array {
  const n = Math.round(((opts.durationMs ?? PROBE.durationMs) / 1000) * rateHz);
  return Float32Array.from({ length: n }, (_, i) => chirpAt((i * 1000) / rateHz, opts));
}

export interface Arrival {
  /** Sample index in the recording where the probe's first sample arrives (fractional). */
  sample: number;
  /** Normalised correlation at the arrival, 0..1: how much the recording there is the probe. */
  match: number;
  /** Peak over the 99th percentile of |correlation| in the searched span. */
  prominence: number;
  /** The strongest peak's position, when an earlier one was taken as the direct sound. */
  strongestSample: number;
}

export interface ArrivalOptions {
  /** Search only arrivals starting in [from, to) (sample indices of the recording). */
  from?: number;
  to?: number;
  /** A peak this fraction of the strongest or more, earlier than it, is the direct sound. */
  firstPeakRatio?: number;
}

/**
 * The probe's arrival in `recording`, or null when the span is shorter than the probe.
 * Judge the result by `match` and `prominence` (see {@link heard}).
 */
export function findArrival(
  recording: Float32Array,
  probe: Float32Array,
  opts: ArrivalOptions = {},
): Arrival | null {
  const from = Math.max(0, Math.floor(opts.from ?? 0));
  const to = Math.min(recording.length - probe.length + 1, Math.ceil(opts.to ?? Infinity));
  if (to <= from || probe.length === 0) return null;
  const span = recording.subarray(from, to + probe.length - 1);
  const corr = crossCorrelate(span, probe); // corr[j]: probe starting at span[j]
  const lags = to - from;

  let best = 0;
  for (let j = 1; j < lags; j++) if (Math.abs(corr[j]) > Math.abs(corr[best])) best = j;
  const strongest = Math.abs(corr[best]);
  // The earliest local maximum within firstPeakRatio of the strongest: the direct path.
  const ratio = opts.firstPeakRatio ?? 0.5;
  let first = best;
  for (let j = 0; j < best; j++) {
    const v = Math.abs(corr[j]);
    if (
      v >= ratio * strongest && v >= Math.abs(corr[j - 1] ?? 0) && v >= Math.abs(corr[j + 1] ?? 0)
    ) {
      first = j;
      break;
    }
  }

  const sorted = Float64Array.from({ length: lags }, (_, j) => Math.abs(corr[j])).sort();
  const floor = sorted[Math.min(lags - 1, Math.floor(lags * 0.99))] || 1e-12;
  const energy = (x: Float32Array, a: number, n: number) => {
    let s = 0;
    for (let i = a; i < a + n; i++) s += x[i] * x[i];
    return s;
  };
  const probeEnergy = energy(probe, 0, probe.length);
  const windowEnergy = energy(span, first, probe.length);
  const match = Math.abs(corr[first]) / Math.sqrt(probeEnergy * windowEnergy || 1e-24);
  return {
    sample: from + first + parabola(corr, first),
    match: Math.min(1, match),
    prominence: Math.abs(corr[first]) / floor,
    strongestSample: from + best + parabola(corr, best),
  };
}

/** The thresholds below which an arrival is "not heard": calibration refuses then. */
export const HEARD = { match: 0.2, prominence: 4 } as const;

export function heard(a: Arrival | null): a is Arrival {
  return a !== null && a.match >= HEARD.match && a.prominence >= HEARD.prominence;
}

/** Offset (−0.5..0.5) of the true peak from index j, by a parabola through j−1, j, j+1. */
function parabola(c: Float64Array, j: number): number {
  if (j <= 0 || j >= c.length - 1) return 0;
  const [y0, y1, y2] = [Math.abs(c[j - 1]), Math.abs(c[j]), Math.abs(c[j + 1])];
  const den = y0 - 2 * y1 + y2;
  return den < 0 ? Math.max(-0.5, Math.min(0.5, (0.5 * (y0 - y2)) / den)) : 0;
}

/** c[j] = Σ x[j+i]·p[i] for j in 0..x.length−p.length, by FFT. */
export function crossCorrelate(x: Float32Array, p: Float32Array): Float64Array {
  const outLen = x.length - p.length + 1;
  if (outLen <= 0) return new Float64Array(0);
  let n = 1;
  while (n < x.length + p.length) n <<= 1;
  const xr = new Float64Array(n), xi = new Float64Array(n);
  const pr = new Float64Array(n), pi = new Float64Array(n);
  xr.set(x);
  pr.set(p);
  fft(xr, xi, false);
  fft(pr, pi, false);
  // X · conj(P): correlation, not convolution.
  for (let k = 0; k < n; k++) {
    const re = xr[k] * pr[k] + xi[k] * pi[k];
    const im = xi[k] * pr[k] - xr[k] * pi[k];
    xr[k] = re;
    xi[k] = im;
  }
  fft(xr, xi, true);
  return xr.slice(0, outLen);
}

/** In-place iterative radix-2 FFT (n a power of two); the inverse is scaled by 1/n. */
export function fft(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = ((inverse ? 2 : -2) * Math.PI) / len;
    const wr = Math.cos(ang), wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k, b = a + len / 2;
        const tr = re[b] * cr - im[b] * ci;
        const ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
  if (inverse) {
    for (let i = 0; i < n; i++) {
      re[i] /= n;
      im[i] /= n;
    }
  }
}

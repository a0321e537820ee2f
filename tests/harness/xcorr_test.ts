import { assertNear } from "../assert.ts";
import { lagOf, lagSeries } from "./xcorr.ts";

function noise(n: number, seed = 9): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) - 0.5;
  return x;
}

/** Delays x by a fractional number of samples with a windowed-sinc interpolator. */
function delay(x: Float32Array, d: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let s = 0;
    for (let k = -16; k <= 16; k++) {
      const j = Math.floor(i - d) + k;
      if (j < 0 || j >= x.length) continue;
      const t = i - d - j;
      const w = 0.5 + 0.5 * Math.cos((Math.PI * t) / 17);
      s += x[j] * (t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t)) * w;
    }
    y[i] = s;
  }
  return y;
}

Deno.test("lagOf() recovers known inserted offsets of 0.1 ms and 2 ms to within 0.01 ms", () => {
  // Low-passed noise: music-like, and fractional delays are well defined for it.
  const raw = noise(12000);
  const x = new Float32Array(raw.length);
  for (let i = 1; i < raw.length; i++) x[i] = 0.7 * x[i - 1] + raw[i];
  for (const ms of [0.1, 2, -0.5]) {
    const d = (ms * 48000) / 1000;
    const { lag } = lagOf(x.subarray(100, 11000), delay(x, d).subarray(100, 11000), 200);
    assertNear((lag * 1000) / 48000, ms, 0.01, `inserted ${ms} ms`);
  }
});

Deno.test("lagSeries() skips silent windows", () => {
  const x = new Float32Array(48000 * 2);
  x.set(noise(48000), 48000);
  const s = lagSeries(x, x);
  assertNear(s.points.length, 2, 1);
  for (const p of s.points) assertNear(p.lagMs, 0, 1e-6);
});

import { assertTrue } from "../../tests/assert.ts";
import { ContextTimeline, StepTimeline } from "./timeline.ts";

/** A device whose context time is heard at `heard(ctx)`; readings every 50 ms with noise. */
function drive(
  t: ContextTimeline | StepTimeline,
  fromSec: number,
  toSec: number,
  heard: (ctx: number) => number,
  noise: (i: number) => number,
  everySec = 0.05,
) {
  let i = 0;
  for (let c = fromSec; c < toSec; c += everySec) {
    t.add({ ctxSec: c, heardMs: heard(c) + noise(i++) });
  }
}

// A reproducible pseudo-random noise source.
function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

Deno.test("the fit follows a device's offset and rate through noise and lone outliers", () => {
  const t = new ContextTimeline();
  const r = rng(7);
  // 250 ppm fast, 0.3 ms of noise, one reading in 20 off by 40 ms (a stalled main thread).
  const heard = (c: number) => 5000 + c * 1000 * (1 + 250e-6);
  drive(t, 1, 20, heard, (i) => (r() - 0.5) * 0.6 + (i % 20 === 7 ? 40 : 0));
  for (const c of [19, 19.5, 20]) {
    const err = t.heardMs(c) - heard(c);
    assertTrue(Math.abs(err) < 0.3, `error ${err.toFixed(3)} ms at ${c} s`);
  }
  assertTrue(Math.abs(t.fit!.slope - 250e-6) < 60e-6, `slope ${t.fit!.slope}`);
  assertTrue(t.jumps === 0, "lone outliers are not jumps");
});

Deno.test("a lasting jump is adopted within a few readings; a context restart starts over", () => {
  const t = new ContextTimeline();
  drive(t, 1, 10, (c) => 100 + c * 1000, () => 0);
  drive(t, 10, 10.5, (c) => 130 + c * 1000, () => 0);
  assertTrue(t.jumps === 1, `jumps ${t.jumps}`);
  assertTrue(Math.abs(t.heardMs(10.5) - (130 + 10500)) < 0.5, "the new position is taken");
  // A new context starts its time at zero again: the old fit says nothing about it.
  t.add({ ctxSec: 0.1, heardMs: 99_000 });
  assertTrue(t.fit!.samples === 1 && Math.abs(t.heardMs(0.1) - 99_000) < 1e-9);
});

Deno.test("early wander (tens of ms) settles: the fit tracks the readings' median", () => {
  const t = new ContextTimeline();
  const r = rng(3);
  const heard = (c: number) => 777 + c * 1000;
  // The first 4 s wander by ±50 ms (as Chromium's output timestamp does), then settle.
  drive(t, 0.05, 4, heard, () => (r() - 0.5) * 100);
  drive(t, 4, 16, heard, () => (r() - 0.5) * 0.4);
  const err = t.heardMs(16) - heard(16);
  assertTrue(Math.abs(err) < 0.3, `error ${err.toFixed(3)} ms once settled`);
});

Deno.test("a low quantile follows the lower edge of readings that only ever come late", () => {
  const t = new ContextTimeline({ quantile: 0.05 });
  const r = rng(11);
  const heard = (c: number) => 300 + c * 1000;
  // currentTime advances in 20 ms blocks: a reading is 0–20 ms late, never early.
  drive(t, 0.05, 12, heard, () => r() * 20);
  const err = t.heardMs(12) - heard(12);
  assertTrue(err > -0.5 && err < 2.5, `error ${err.toFixed(3)} ms`);
  assertTrue(t.jumps === 0, "block-late readings are not jumps");
});

// Output timestamps as Chromium gives them: ~0.1 ms of noise, a fixed rate, and real steps.
const STAMP_EVERY = 0.02;

Deno.test("step timeline: a device's rate and offset through 0.1 ms of noise and lone outliers", () => {
  const t = new StepTimeline();
  const r = rng(5);
  const heard = (c: number) => 4000 + c * 1000 * (1 - 140e-6);
  const noise = (i: number) => (r() - 0.5) * 0.2 + (i % 50 === 9 ? 30 : i % 50 === 10 ? -20 : 0);
  drive(t, 1, 30, heard, noise, STAMP_EVERY);
  const err = t.heardMs(30) - heard(30);
  assertTrue(Math.abs(err) < 0.1, `error ${err.toFixed(3)} ms`);
  assertTrue(
    Math.abs(t.fit!.slope + 140e-6) < 20e-6,
    `slope ${(t.fit!.slope * 1e6).toFixed(1)} ppm`,
  );
  assertTrue(t.jumps === 0, `outliers taken as steps: ${t.jumps}`);
});

Deno.test("step timeline: a 1 ms step is taken within 0.2 s and does not tilt the rate", () => {
  const t = new StepTimeline();
  const r = rng(9);
  const noise = () => (r() - 0.5) * 0.2;
  const before = (c: number) => 200 + c * 1000 * (1 + 80e-6);
  const after = (c: number) => before(c) + 1;
  drive(t, 1, 20, before, noise, STAMP_EVERY);
  drive(t, 20, 20.2, after, noise, STAMP_EVERY);
  assertTrue(t.jumps === 1, `steps ${t.jumps}`);
  const soon = t.heardMs(20.2) - after(20.2);
  assertTrue(Math.abs(soon) < 0.15, `0.2 s after the step: error ${soon.toFixed(3)} ms`);
  // Steps of a few ms every few seconds (a loaded machine): the rate stays the device's.
  const shifts = [1, 5, 2, 6, 3, 7];
  shifts.forEach((shift, k) =>
    drive(t, 20.2 + k * 3, 23.2 + k * 3, (c) => before(c) + shift, noise, STAMP_EVERY)
  );
  const end = 20.2 + 18;
  const err = t.heardMs(end) - (before(end) + 7);
  assertTrue(Math.abs(err) < 0.15, `after six steps: error ${err.toFixed(3)} ms`);
  assertTrue(
    Math.abs(t.fit!.slope - 80e-6) < 20e-6,
    `slope ${(t.fit!.slope * 1e6).toFixed(1)} ppm`,
  );
});

Deno.test("step timeline: early wander settles, and a context restart starts over", () => {
  const t = new StepTimeline();
  const r = rng(13);
  const heard = (c: number) => 900 + c * 1000;
  drive(t, 0.02, 4, heard, () => (r() - 0.5) * 60, STAMP_EVERY);
  drive(t, 4, 16, heard, () => (r() - 0.5) * 0.2, STAMP_EVERY);
  const err = t.heardMs(16) - heard(16);
  assertTrue(Math.abs(err) < 0.1, `error ${err.toFixed(3)} ms once settled`);
  assertTrue(Math.abs(t.fit!.slope) < 50e-6, `slope ${(t.fit!.slope * 1e6).toFixed(1)} ppm`);
  t.add({ ctxSec: 0.1, heardMs: 99_000 });
  assertTrue(t.fit!.samples === 1 && Math.abs(t.heardMs(0.1) - 99_000) < 1e-9);
});

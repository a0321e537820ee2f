import { assertEquals, assertNear, assertTrue } from "../tests/assert.ts";
import { chirpAt } from "../audio/arrival.ts";
import {
  type CalibrationDevice,
  type HeardRecording,
  MAX_LATENCY_MS,
  measureProbes,
  planCalibration,
  verdict,
} from "./calibration.ts";

const RATE = 48000;

/**
 * A room: each device's probe arrives `lateMs − delayMs` after its time (a hidden latency that
 * its speaker delay partly makes up), at `gain`, over noise, with one echo 7 ms later. The
 * recording starts at host time `t0` and runs `ppm` fast, as a microphone's clock does.
 */
function room(
  devices: (CalibrationDevice & { lateMs: number; gain: number })[],
  opts: { t0?: number; ppm?: number; noise?: number } = {},
) {
  const t0 = opts.t0 ?? 10_000, k = 1 + (opts.ppm ?? 0) * 1e-6;
  const plan = planCalibration(devices, t0 + 200);
  const n = Math.ceil(((plan.endHostMs - t0) / 1000) * RATE);
  const samples = new Float32Array(n);
  let seed = 7;
  const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) - 0.5;
  const hostMsOf = (i: number) => t0 + (i * 1000) / RATE / k;
  for (let i = 0; i < n; i++) {
    const h = hostMsOf(i);
    let v = (opts.noise ?? 0.01) * rand();
    for (const p of plan.probes) {
      const d = devices.find((x) => x.name === p.name)!;
      const at = p.atHostMs + d.lateMs - d.delayMs;
      v += d.gain * (chirpAt(h - at) + 0.4 * chirpAt(h - at - 7));
    }
    samples[i] = v;
  }
  const rec: HeardRecording = {
    rateHz: RATE,
    samples,
    hostMsOf,
    indexAt: (h) => ((h - t0) * k * RATE) / 1000,
  };
  return { plan, rec };
}

Deno.test("each device's delay makes it meet the quickest at the microphone, echoes and noise notwithstanding", () => {
  const { plan, rec } = room([
    { name: "Alex", host: true, delayMs: 0, lateMs: 12, gain: 0.5 },
    { name: "Sam", host: false, delayMs: 0, lateMs: 12 + 37, gain: 0.3 },
    { name: "Kim", host: false, delayMs: 20, lateMs: 12 + 120, gain: 0.1 },
    { name: "Lee", host: false, delayMs: 0, lateMs: 9, gain: 0.2 },
  ], { ppm: 250 });
  assertEquals(plan.probes.map((p) => p.name), ["Alex", "Sam", "Kim", "Lee"]);
  const v = verdict(measureProbes(rec, plan));
  assertEquals(v.ok, true);
  const by = Object.fromEntries(v.devices.map((d) => [d.name, d]));
  // Lee is the quickest (9 ms): it gets no delay and the others their excess over it.
  assertNear(by.Lee.delayMs, 0, 0.05);
  assertNear(by.Alex.delayMs, 3, 0.05);
  assertNear(by.Sam.delayMs, 40, 0.05);
  assertNear(by.Kim.delayMs, 123, 0.05);
  assertNear(by.Kim.latencyMs!, 123, 0.05);
  assertEquals(by.Kim.delayBeforeMs, 20);
  for (const d of v.devices) assertEquals(d.heard, true);
  for (const d of v.devices) assertEquals(d.confidence > 0.5, true, JSON.stringify(d));
});

Deno.test("calibrating one peer moves only it, to meet the host", () => {
  const { plan, rec } = room([
    { name: "Alex", host: true, delayMs: 5, lateMs: 12, gain: 0.5 },
    { name: "Sam", host: false, delayMs: 0, lateMs: 60, gain: 0.3 },
  ]);
  const v = verdict(measureProbes(rec, plan), "Sam");
  assertEquals(v.ok, true);
  const [alex, sam] = v.devices;
  assertEquals(alex.delayMs, 5);
  // The host is heard 7 ms after its time; Sam 60 ms: a 53 ms delay brings it to 7 ms too.
  assertNear(sam.delayMs, 53, 0.05);
});

Deno.test("a probe not heard refuses the calibration by name and changes nothing", () => {
  const { plan, rec } = room([
    { name: "Alex", host: true, delayMs: 0, lateMs: 12, gain: 0.5 },
    { name: "Sam", host: false, delayMs: 30, lateMs: 40, gain: 0 },
    { name: "Kim", host: false, delayMs: 0, lateMs: 50, gain: 0.3 },
  ], { noise: 0.05 });
  const v = verdict(measureProbes(rec, plan));
  assertEquals(v.ok, false);
  if (v.ok) return;
  assertTrue(/did not hear Sam \(muted/.test(v.message), v.message);
  assertEquals(v.devices.map((d) => d.delayMs), [0, 30, 0]);
  assertEquals(v.devices.map((d) => d.heard), [true, false, true]);
});

Deno.test("a device too early for a one-peer calibration, or later than a delay can make up, is refused", () => {
  const early = room([
    { name: "Alex", host: true, delayMs: 0, lateMs: 40, gain: 0.5 },
    { name: "Sam", host: false, delayMs: 0, lateMs: 10, gain: 0.3 },
  ]);
  const v1 = verdict(measureProbes(early.rec, early.plan), "Sam");
  assertEquals(v1.ok, false);
  if (!v1.ok) assertTrue(/Sam is heard 30\.0 ms before the host/.test(v1.message), v1.message);

  const slow = room([
    { name: "Alex", host: true, delayMs: 0, lateMs: 0, gain: 0.5 },
    { name: "Sam", host: false, delayMs: 0, lateMs: MAX_LATENCY_MS - 50, gain: 0.3 },
  ]);
  const v2 = verdict(measureProbes(slow.rec, slow.plan));
  assertEquals(v2.ok, false);
  if (!v2.ok) assertTrue(/more than the 500 ms/.test(v2.message), v2.message);
  assertEquals(v2.devices.map((d) => d.delayMs), [0, 0]);
});

import { assertEquals, assertNear, assertTrue } from "../tests/assert.ts";
import { recordBus, startPulse } from "../tests/harness/pulse.ts";
import { crossCorrelate, findArrival, heard, makeChirp } from "./arrival.ts";

const RATE = 48_000;

/** Deterministic white noise (xorshift), uniform in ±amplitude. */
function noise(n: number, amplitude: number, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 0xffffffff * 2 - 1) * amplitude;
  }
  return out;
}

/** `base` with `signal` scaled by `gain` added at sample `at`. */
function mixAt(base: Float32Array, signal: Float32Array, at: number, gain = 1): Float32Array {
  for (let i = 0; i < signal.length && at + i < base.length; i++) base[at + i] += gain * signal[i];
  return base;
}

Deno.test("FFT cross-correlation equals the direct sum", () => {
  const x = noise(300, 1, 7), p = noise(40, 1, 9);
  const c = crossCorrelate(x, p);
  assertEquals(c.length, 261);
  for (const j of [0, 17, 130, 260]) {
    let direct = 0;
    for (let i = 0; i < p.length; i++) direct += x[j + i] * p[i];
    assertNear(c[j], direct, 1e-9, `lag ${j}`);
  }
});

Deno.test("a chirp in noise louder than it is found to the sample, and counts as heard", () => {
  const probe = makeChirp(RATE);
  const rec = mixAt(noise(RATE * 2, 0.5, 3), probe, 51_234, 0.3); // noise RMS ~0.29, chirp ~0.1
  const a = findArrival(rec, probe);
  assertTrue(a && heard(a), JSON.stringify(a));
  assertNear(a.sample, 51_234, 1, "arrival sample");
  assertTrue(a.match > 0.2 && a.match < 0.6, `match ${a.match}`);
});

Deno.test("an echo louder than the direct sound: the earlier arrival is the one reported", () => {
  const probe = makeChirp(RATE);
  const rec = noise(RATE, 0.01, 5);
  mixAt(rec, probe, 10_000, 0.6); // direct path, through a wall
  mixAt(rec, probe, 10_000 + 720, 1.0); // 15 ms later, off a reflecting surface
  mixAt(rec, probe, 10_000 + 2_100, 0.4); // a later, weaker one
  const a = findArrival(rec, probe);
  assertTrue(a && heard(a), JSON.stringify(a));
  assertNear(a.sample, 10_000, 1, "direct sound");
  assertNear(a.strongestSample, 10_720, 1, "strongest copy");
});

Deno.test("nothing, or a probe 40 dB under the noise, is not heard", () => {
  const probe = makeChirp(RATE);
  assertTrue(!heard(findArrival(noise(RATE, 0.3, 11), probe)), "noise alone");
  const drowned = mixAt(noise(RATE, 0.3, 12), probe, 20_000, 0.003);
  assertTrue(!heard(findArrival(drowned, probe)), "drowned probe");
  assertTrue(!heard(findArrival(new Float32Array(RATE), probe)), "silence");
  assertEquals(findArrival(new Float32Array(100), probe), null);
});

Deno.test("the search span limits where an arrival may start", () => {
  const probe = makeChirp(RATE);
  const rec = noise(RATE * 2, 0.01, 13);
  mixAt(rec, probe, 5_000);
  mixAt(rec, probe, 60_000, 0.5);
  const a = findArrival(rec, probe, { from: 30_000, to: 90_000 });
  assertTrue(a && heard(a));
  assertNear(a.sample, 60_000, 1);
});

Deno.test({
  name: "through a real sound server: two chirps 37 ms apart in one stream, recorded from the " +
    "monitor with an echo and noise from another stream, are found 37 ms apart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pulse = await startPulse(2);
    const rec = recordBus(pulse);
    try {
      const probe = makeChirp(RATE);
      const gap = Math.round(0.037 * RATE);
      const stream = new Float32Array(RATE * 2);
      mixAt(stream, probe, RATE / 2);
      mixAt(stream, probe, RATE / 2 + 2_000, 0.7); // the first one's echo
      mixAt(stream, probe, RATE / 2 + gap + RATE / 2);
      const play = async (device: number, samples: Float32Array) => {
        const child = new Deno.Command("pacat", {
          args: ["--rate=48000", "--channels=1", "--format=float32le", "--raw", "--playback"],
          env: pulse.env(device),
          stdin: "piped",
          stderr: "piped",
        }).spawn();
        const w = child.stdin.getWriter();
        await w.write(new Uint8Array(samples.buffer));
        await w.close();
        const done = await child.output();
        assertTrue(done.success, new TextDecoder().decode(done.stderr));
      };
      await Promise.all([play(0, stream), play(1, noise(RATE * 2, 0.2, 17))]);
      await new Promise((r) => setTimeout(r, 300));
      const bus = await rec.stop();
      const mixed = bus.channels[0].map((v, i) => v + bus.channels[1][i]);
      const first = findArrival(mixed, probe);
      assertTrue(first && heard(first), JSON.stringify(first));
      const second = findArrival(mixed, probe, { from: first.sample + RATE / 4 });
      assertTrue(second && heard(second), JSON.stringify(second));
      const apartMs = ((second.sample - first.sample) / RATE) * 1000 - 500;
      assertNear(apartMs, 37, 0.05, "measured gap (ms)");
      console.log(
        `arrivals ${((second.sample - first.sample) / RATE * 1000).toFixed(3)} ms apart ` +
          `(want 537.000); match ${first.match.toFixed(2)}/${second.match.toFixed(2)}, ` +
          `prominence ${first.prominence.toFixed(0)}/${second.prominence.toFixed(0)}`,
      );
    } finally {
      await rec.stop().catch(() => {});
      await pulse.stop();
    }
  },
});

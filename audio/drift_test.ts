import { assertEquals, assertTrue } from "../tests/assert.ts";
import { seededRandom } from "../net/link_model.ts";
import { DRIFT, DriftController } from "./drift.ts";

/**
 * A simulated device on a fake clock: every 2.5 ms block the player advances by its step
 * (nominal × (1 + nudge)), while where it *should* be advances at the true rate, which differs
 * from what the clock maps predict by `rateErrorPpm`. The controller only sees the error plus
 * measurement noise. Returns the true error over time.
 */
function simulate(o: {
  seconds: number;
  rateErrorPpm?: number;
  noiseMs?: number;
  steps?: { atSec: number; ms: number }[];
}) {
  const c = new DriftController();
  const rnd = seededRandom(11);
  const gauss = () => Math.sqrt(-2 * Math.log(rnd() || 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const blockMs = 2.5;
  let err = 0; // true position − ideal, in ms of audio
  const trace: { t: number; err: number; nudgePpm: number }[] = [];
  const steps = [...(o.steps ?? [])];
  let resyncs = 0, maxNudge = 0;
  for (let t = 0; t < o.seconds * 1000; t += blockMs) {
    while (steps.length && steps[0].atSec * 1000 <= t) err += steps.shift()!.ms;
    const d = c.decide(err + (o.noiseMs ?? 0) * gauss());
    let nudge = 0;
    if (d.action === "resync") {
      err = 0;
      resyncs++;
    } else if (d.action === "nudge") nudge = d.nudge;
    maxNudge = Math.max(maxNudge, Math.abs(nudge));
    err += blockMs * (nudge - (o.rateErrorPpm ?? 0) * 1e-6);
    trace.push({ t, err, nudgePpm: nudge * 1e6 });
  }
  return { trace, resyncs, maxNudge };
}

/** Largest |error| from `sec` on (a loop: 240 000 points are too many for Math.max(...)). */
function worstAfter(tr: { t: number; err: number }[], sec: number): number {
  let m = 0;
  for (const p of tr) if (p.t >= sec * 1000) m = Math.max(m, Math.abs(p.err));
  return m;
}

Deno.test("drift: a 20 ppm rate error over 10 minutes stays within a few hundredths of a ms", () => {
  const r = simulate({ seconds: 600, rateErrorPpm: 20, noiseMs: 0.01 });
  const worst = worstAfter(r.trace, 5);
  // Proportional control settles at rateError × horizon = 20e-6 × 1000 ms = 0.02 ms.
  assertTrue(worst < 0.06, `worst error ${worst.toFixed(4)} ms`);
  assertEquals(r.resyncs, 0);
});

Deno.test("drift: without correction the same device drifts 12 ms in 10 minutes", () => {
  // The reference the controller is measured against: 20 ppm × 600 s.
  const c = new DriftController({ ...DRIFT, maxNudge: 0 });
  let err = 0;
  for (let t = 0; t < 600_000; t += 2.5) {
    const d = c.decide(err);
    if (d.action === "resync") err = 0;
    err -= 2.5 * 20e-6;
  }
  assertTrue(Math.abs(err) > 11.9, `uncorrected drift ${err.toFixed(2)} ms`);
});

Deno.test("drift: measurement noise below the deadband is left alone", () => {
  const r = simulate({ seconds: 60, noiseMs: 0.005 });
  const nudged = r.trace.filter((p) => p.nudgePpm !== 0).length / r.trace.length;
  assertTrue(nudged < 0.01, `nudged ${(nudged * 100).toFixed(2)} % of blocks`);
  assertTrue(worstAfter(r.trace, 0) < 0.02, "error stays inside the deadband");
});

Deno.test("drift: a 5 ms step is slewed away without a jump, never faster than 1000 ppm", () => {
  const r = simulate({ seconds: 30, steps: [{ atSec: 1, ms: 5 }], noiseMs: 0.005 });
  assertEquals(r.resyncs, 0, "no jump");
  assertTrue(r.maxNudge <= DRIFT.maxNudge + 1e-12, `nudge ${r.maxNudge}`);
  const at = (sec: number) => Math.abs(r.trace.find((p) => p.t >= sec * 1000)!.err);
  assertTrue(at(3) > 2, `still slewing at 3 s: ${at(3)}`); // 1000 ppm removes 1 ms/s
  assertTrue(at(15) < 0.05, `settled by 15 s: ${at(15)}`);
});

Deno.test("drift: a 30 ms step (a clock jump) resyncs once", () => {
  const r = simulate({ seconds: 10, steps: [{ atSec: 2, ms: -30 }] });
  assertEquals(r.resyncs, 1);
  assertTrue(worstAfter(r.trace, 2.1) < 0.02, "back on the timeline at once");
});

Deno.test("drift: realign jumps for a deliberate change, but not for noise", () => {
  const c = new DriftController();
  assertEquals(c.decide(3, true).action, "resync");
  assertEquals(c.decide(0.01, true).action, "hold");
  assertEquals(c.decide(3).action, "nudge");
});

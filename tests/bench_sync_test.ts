/**
 * A short run of the sync benchmark's `lan` scenario, so a regression in sync shows in CI.
 * The bound is generous (the benchmark's own figures are far tighter); it catches breakage,
 * not noise on a busy 2-core machine.
 */
import { assertTrue } from "./assert.ts";
import { runScenario } from "../bench/sync_rig.ts";
import { summaryLine } from "../bench/sync.ts";

Deno.test({
  name: "bench lan (short): host and two skewed peers stay within 2 ms p95, measured acoustically",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const r = await runScenario("lan", { seconds: 8 });
    console.log(summaryLine(r));
    for (const p of r.pairs) {
      assertTrue(p.windows >= 25, `${p.pair}: enough windows with sound (${p.windows})`);
      assertTrue(p.p95Ms <= 2, `${p.pair}: p95 ${p.p95Ms.toFixed(3)} ms ≤ 2 ms`);
      assertTrue(p.maxMs <= 5, `${p.pair}: max ${p.maxMs.toFixed(3)} ms ≤ 5 ms`);
    }
    const f = r.figures;
    assertTrue(
      f.playToSoundMs !== null && f.playToSoundMs! > 50 && f.playToSoundMs! < 1000,
      `play → sound measured: ${f.playToSoundMs} ms`,
    );
    for (const k of [1, 2]) {
      const lock = f[`startupToLockMs_peer${k}`];
      assertTrue(lock !== null && lock! > 0 && lock! < 5000, `peer ${k} locked: ${lock} ms`);
    }
    assertTrue(r.processes.length === 3, "CPU and memory of every process");
  },
});

import { startPulse, recordBus } from "./tests/harness/pulse.ts";
import { PulseSink } from "./audio/sinks/pulse.ts";
import { DeviceClock } from "./audio/device_clock.ts";
import { realNowMs } from "./audio/sink.ts";
const p = await startPulse(2);
for (const [k, v] of Object.entries(p.env(0))) Deno.env.set(k, v);
const rec = recordBus(p, "/tmp/rec.raw");
await new Promise((r) => setTimeout(r, 300));
const sinks = [new PulseSink(48000, 70, "dev0"), new PulseSink(48000, 70, "dev1")];
const clocks = sinks.map(() => new DeviceClock(48000));
const written = [0, 0];
for (const s of sinks) await s.open();
const T0 = realNowMs() + 3000; const clickAt: number[] = []; for (let i = 0; i < 16; i++) clickAt.push(T0 + i * 500);
const t0 = performance.now();
while (performance.now() - t0 < 12000) {
  for (let k = 0; k < 2; k++) {
    const s = sinks[k], dc = clocks[k];
    const t = s.timing(); if (t) dc.add(t);
    const n = s.writableFrames();
    if (n > 0 && dc.ready) {
      const buf = new Float32Array(n * 2);
      for (const c of clickAt) {
        const f = (dc.rateHz/1000) * (c - dc.localMsOf(0)) ; // frame heard at c
        const idx = Math.round(f) - written[k];
        if (idx >= 0 && idx < n) { buf[idx*2] = 0.9; buf[idx*2+1] = 0.9; }
      }
      s.write(buf); written[k] += n;
    } else if (n > 0) { s.write(new Float32Array(n*2)); written[k] += n; }
  }
  await new Promise((r) => setTimeout(r, 4));
}
const ch = await rec.stop();
for (const s of sinks) await s.close(); await p.stop();
const pos = ch.map((c) => { const r: number[] = []; for (let i = 0; i < c.length; i++) if (c[i] > 0.3) { r.push(i); i += 100; } return r; });
console.log(pos[0].length, pos[1].length, clocks.map(c=>((c.rateHz/48000-1)*1e6).toFixed(0)), clocks.map(c=>c.resets));
console.log(pos[0].map((x, i) => x - pos[1][i]).join(" "));
console.log(pos[0].map((x, i) => i ? x - pos[0][i-1] - 24000 : 0).join(" "));

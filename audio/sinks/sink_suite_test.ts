/**
 * One compliance suite, run against every backend: each must accept writes without blocking,
 * keep its write-ahead bounded, report a play position that advances at the device rate, and
 * (for audible backends) really produce the sound written — checked from a recording.
 */
import { assertTrue } from "../../tests/assert.ts";
import { recordBus, startPulse } from "../../tests/harness/pulse.ts";
import { DeviceClock } from "../device_clock.ts";
import type { AudioSink, SinkBackend } from "../sink.ts";
import { createSink } from "./select.ts";

async function exercise(sink: AudioSink, seconds: number) {
  const dc = new DeviceClock(sink.rateHz);
  let written = 0, maxAheadMs = 0, observations = 0, lastFrame = -Infinity, backwards = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    const n = sink.writableFrames();
    if (n > 0) {
      const block = new Float32Array(n * 2);
      for (let i = 0; i < n; i++) {
        block[2 * i] = block[2 * i + 1] = 0.5 *
          Math.sin(2 * Math.PI * 1000 * (written + i) / sink.rateHz);
      }
      sink.write(block);
      written += n;
    }
    const t = sink.timing();
    if (t) {
      observations++;
      if (t.frame < lastFrame - 1) backwards++;
      lastFrame = t.frame;
      dc.add(t);
      maxAheadMs = Math.max(maxAheadMs, ((written - t.frame) * 1000) / sink.rateHz);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    written,
    maxAheadMs,
    observations,
    backwards,
    ratePpm: (dc.rateHz / sink.rateHz - 1) * 1e6,
  };
}

for (const backend of ["null", "wav", "pulse", "portaudio"] as SinkBackend[]) {
  Deno.test({
    name: `sink "${backend}" keeps time at the device rate with bounded write-ahead`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const audible = backend === "pulse" || backend === "portaudio";
      const pulse = audible ? await startPulse(1) : null;
      const tmp = await Deno.makeTempDir();
      const saved = new Map<string, string | undefined>();
      if (pulse) {
        for (const [k, v] of Object.entries(pulse.env(0))) {
          saved.set(k, Deno.env.get(k));
          Deno.env.set(k, v);
        }
      }
      try {
        const rec = pulse ? recordBus(pulse) : null;
        const sink = createSink(backend, { backend, wavPath: `${tmp}/out.wav` });
        await sink.open();
        // 4 s: PulseAudio's null sink renders one long block when a stream first connects (~2 s).
        const r = await exercise(sink, 4);
        await sink.close();
        const summary = JSON.stringify(r);
        assertTrue(r.observations > 5, `reports its position (${summary})`);
        assertTrue(r.backwards === 0, `position never runs backwards (${summary})`);
        assertTrue(Math.abs(r.ratePpm) < 2000, `rate within 0.2 % of nominal (${summary})`);
        assertTrue(r.maxAheadMs < 300, `write-ahead bounded (${summary})`);
        assertTrue(r.written > 1.5 * sink.rateHz, `accepted audio for seconds (${summary})`);
        if (backend === "wav") {
          const bytes = (await Deno.stat(`${tmp}/out.wav`)).size;
          assertTrue(
            bytes === 44 + r.written * 8,
            `wav holds every frame written (${bytes} bytes)`,
          );
        }
        if (rec) {
          const [ch] = (await rec.stop()).channels;
          let loud = 0;
          for (const v of ch) if (Math.abs(v) > 0.2) loud++;
          assertTrue(
            loud / 48000 > 0.5,
            `the tone was really played (${(loud / 48000).toFixed(2)} s loud)`,
          );
        }
      } finally {
        for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
        await pulse?.stop();
        await Deno.remove(tmp, { recursive: true }).catch(() => {});
      }
    },
  });
}

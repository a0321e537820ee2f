/**
 * The microphone against a real sound server: the harness's private PulseAudio, whose room
 * microphone (the bus monitor, recorded in mono) hears every simulated device. Chirps are placed the way the output
 * worker places music (sink timing → DeviceClock → the sound as a function of local time), so
 * "where it was placed" is the sink's own account of when it was heard.
 */
import { assertEquals, assertNear, assertRejects, assertTrue } from "../tests/assert.ts";
import { pactl, type PrivatePulse, startPulse } from "../tests/harness/pulse.ts";
import { chirpAt, findArrival, heard, makeChirp, PROBE } from "./arrival.ts";
import { DeviceClock } from "./device_clock.ts";
import { fitCaptureClock, type MicBackend, type MicRecording, startMic } from "./mic.ts";
import { AudioDeviceError, realNowMs } from "./sink.ts";
import { PulseSink } from "./sinks/pulse.ts";

const RATE = 48_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Points the process at the private daemon (libpulse reads PULSE_SERVER) until undone. */
function useServer(pulse: PrivatePulse): () => void {
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(pulse.env(0))) {
    saved.set(k, Deno.env.get(k));
    Deno.env.set(k, v);
  }
  return () => {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  };
}

/**
 * Keeps a sink fed, as audio/output_worker.ts does: frame `w` carries the chirps' sound at the
 * local time the device clock says `w` is heard. Push chirp start times (local ms) to `at`
 * while running. `heardMsOf(ms)` afterwards: when the chirp placed at `ms` was heard by the
 * sink's own reports, fitted over the whole run (the live clock is younger, and restarts when
 * the bus's latency changes as the microphone connects) with the microphone's robust line.
 */
function feed(sink: PulseSink) {
  const at: number[] = [];
  const startFrame = new Map<number, number>();
  let running = true;
  const dc = new DeviceClock(sink.rateHz);
  const reports: number[] = [];
  const done = (async () => {
    let written = 0;
    while (running) {
      const t = sink.timing();
      if (t) {
        dc.add(t);
        reports.push(t.frame, t.localMs);
      }
      const n = sink.writableFrames();
      if (n >= 120) {
        const block = new Float32Array(n * 2);
        if (dc.ready) {
          for (let i = 0; i < n; i++) {
            const ms = dc.localMsOf(written + i);
            let v = 0;
            for (const a of at) {
              if (!startFrame.has(a) && ms >= a) {
                startFrame.set(a, written + i - (ms - a) * dc.rateHz / 1000);
              }
              v += chirpAt(ms - a);
            }
            block[2 * i] = block[2 * i + 1] = v;
          }
        }
        sink.write(block);
        written += n;
      }
      await sleep(4);
    }
  })();
  const after = () => fitCaptureClock(Float64Array.from(reports), sink.rateHz)!;
  return {
    at,
    sinkRateHz: () => after().framesPerMs * 1000,
    heardMsOf: (ms: number) => {
      const fit = after();
      return fit.refMs + ((startFrame.get(ms) ?? NaN) - fit.refFrame) / fit.framesPerMs;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The probe's arrival near local time `ms` (±150 ms), as local time. */
function arrivalNear(rec: MicRecording, ms: number) {
  const probe = makeChirp(rec.rateHz);
  const center = rec.indexAt(ms);
  const a = findArrival(rec.samples, probe, {
    from: center - 0.15 * rec.rateHz,
    to: center + 0.15 * rec.rateHz,
  });
  return { arrival: a, ms: a ? rec.localMsOf(a.sample) : NaN };
}

/**
 * Two chirps placed 4 s apart on dev0, recorded by the room microphone through `backend`:
 * returns each arrival's offset from where the sink's reports say it was heard, and the
 * difference of arrivals minus the difference of placements.
 */
async function twoChirps(backend: MicBackend): Promise<{ offsets: number[]; relErrMs: number }> {
  const pulse = await startPulse(2);
  const restore = useServer(pulse);
  const sink = new PulseSink(RATE, 70, "dev0");
  let player: ReturnType<typeof feed> | null = null;
  try {
    await sink.open();
    player = feed(sink);
    // PulseAudio's null sink renders one long block when a stream first connects (~2 s).
    await sleep(2500);
    // PortAudio records the default input, which the harness makes the room microphone.
    const mic = await startMic(backend === "pulse" ? { source: pulse.micSource } : { backend });
    assertEquals(
      mic.source,
      backend === "pulse" ? `pulse:${pulse.micSource}` : "portaudio:default",
    );
    const first = realNowMs() + 1000;
    const placed = [first, first + 4000];
    player.at.push(...placed);
    await sleep(placed[1] + PROBE.durationMs + 1000 - realNowMs());
    const rec = await mic.stop();
    await player.stop();

    const [a, b] = placed.map((ms) => arrivalNear(rec, ms));
    for (const x of [a, b]) assertTrue(heard(x.arrival), JSON.stringify(x.arrival));
    const heardMs = placed.map((ms) => player!.heardMsOf(ms));
    const offsets = [a.ms - heardMs[0], b.ms - heardMs[1]];
    const relErrMs = (b.ms - a.ms) - (heardMs[1] - heardMs[0]);
    console.log(
      `${backend}: arrival − placement ${offsets.map((o) => o.toFixed(3)).join(" / ")} ms ` +
        `(placement − request ${
          heardMs.map((h, i) => (h - placed[i]).toFixed(3)).join(" / ")
        } ms); difference of arrivals − difference of placements ${relErrMs.toFixed(3)} ms; ` +
        `capture rate ${((rec.measuredRateHz / RATE - 1) * 1e6).toFixed(1)} ppm, sink rate ${
          ((player.sinkRateHz() / RATE - 1) * 1e6).toFixed(1)
        } ppm; timing from ${rec.timingReports} reports (all: rms ${rec.fitRmsMs.toFixed(2)} ms)`,
    );
    return { offsets, relErrMs };
  } finally {
    await player?.stop();
    await sink.close();
    restore();
    await pulse.stop();
  }
}

Deno.test({
  name: "two chirps placed 4 s apart on a device are recorded by the room microphone 4 s " +
    "apart to 0.5 ms, each near where it was placed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { offsets, relErrMs } = await twoChirps("pulse");
    // A monitor's capture time is when the sink plays the sound: no acoustic path here.
    for (const o of offsets) assertNear(o, 0, 2, "arrival − placement (ms)");
    // Measured on a quiet machine: 0.005–0.017 ms; one CI run on a busy one: 0.41 ms. The
    // bound is calibration's goal (devices within 0.5 ms at the microphone).
    assertNear(relErrMs, 0, 0.5, "difference of arrivals − difference of placements (ms)");
  },
});

Deno.test({
  name: "PortAudio's default input (through ALSA's pulse plugin here) records both chirps, " +
    "4 s apart to 1 ms",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { offsets, relErrMs } = await twoChirps("portaudio");
    // Measured here: −54 ms (the declared 40 ms input latency is subtracted, yet the monitor's
    // samples are readable before the bus plays them) and 0.02–0.45 ms between arrivals: the
    // ALSA plugin hands over 20 ms pieces, so few reports fall near their lower edge. Only the
    // path is proven here, not calibration precision (CoreAudio and WASAPI are untested).
    for (const o of offsets) assertNear(o, 0, 100, "arrival − placement (ms)");
    assertNear(relErrMs, 0, 1, "difference of arrivals − difference of placements (ms)");
  },
});

Deno.test({
  name: "a chirp on a muted device is not heard by the room microphone; unmuted it is",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pulse = await startPulse(2);
    const restore = useServer(pulse);
    const sink = new PulseSink(RATE, 70, "dev1");
    let player: ReturnType<typeof feed> | null = null;
    try {
      await sink.open();
      player = feed(sink);
      await sleep(2500);
      const mic = await startMic({ source: pulse.micSource });
      const loud = realNowMs() + 500;
      const muted = loud + 1500;
      player.at.push(loud, muted);
      await sleep(loud + PROBE.durationMs + 300 - realNowMs());
      await pactl(pulse, "set-sink-mute", "dev1", "1");
      await sleep(muted + PROBE.durationMs + 500 - realNowMs());
      const rec = await mic.stop();
      await player.stop();
      player = null;
      const a = arrivalNear(rec, loud).arrival, m = arrivalNear(rec, muted).arrival;
      console.log(`unmuted match ${a?.match.toFixed(2)}, muted match ${m?.match.toFixed(2)}`);
      assertTrue(heard(a), `unmuted chirp heard: ${JSON.stringify(a)}`);
      assertTrue(m !== null && !heard(m), `muted chirp not heard: ${JSON.stringify(m)}`);
    } finally {
      await player?.stop();
      await sink.close();
      restore();
      await pulse.stop();
    }
  },
});

Deno.test({
  name: "a microphone that does not exist is refused with a message naming it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pulse = await startPulse(1);
    const restore = useServer(pulse);
    try {
      await assertRejects(() => startMic({ source: "no-such-mic" }), /"no-such-mic" not found/);
      const err = await startMic({ source: "no-such-mic" }).catch((e) => e);
      assertTrue(err instanceof AudioDeviceError, String(err));
    } finally {
      restore();
      await pulse.stop();
    }
  },
});

Deno.test({
  name: "a recording stops at its length limit, keeps what it captured and says so",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pulse = await startPulse(1);
    const restore = useServer(pulse);
    try {
      const mic = await startMic({ source: pulse.micSource, maxMs: 1000 });
      await sleep(2000);
      const rec = await mic.stop();
      assertEquals(rec.samples.length, RATE);
      assertTrue(/1 s limit/.test(rec.warning ?? ""), String(rec.warning));
    } finally {
      restore();
      await pulse.stop();
    }
  },
});

Deno.test("capture clock: scattered reports are fitted by least squares", () => {
  // 10 s of reports every 5 ms, sd 0.1 ms around a device 200 ppm fast, a few late.
  const rate = 48 * 1.0002;
  const pairs: number[] = [];
  let s = 7;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
  for (let t = 0; t < 10_000; t += 5) {
    const gauss = Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
    const late = rnd() < 0.02 ? 5 * rnd() : 0;
    pairs.push(t * rate, 1.7e12 + t + 0.1 * gauss + late);
  }
  const fit = fitCaptureClock(Float64Array.from(pairs), 48_000)!;
  assertNear((fit.framesPerMs / rate - 1) * 1e6, 0, 5, "rate error (ppm)");
  assertNear(fit.refMs + (480_000 - fit.refFrame) / fit.framesPerMs - 1.7e12, 480_000 / rate, 0.05);
});

Deno.test("capture clock: runs of reports late by 4.9 ms (a monitor) do not tilt the line", () => {
  const rate = 48 * 1.00013;
  const pairs: number[] = [];
  let s = 5;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
  for (let t = 0; t < 6_000; t += 4 + 2 * rnd()) {
    const late = Math.floor(t / 50) % 2 === 0 && rnd() < 0.9 ? 4.9 : 0;
    pairs.push(t * rate, 1.7e12 + t + late + 0.02 * (rnd() - 0.5));
  }
  const fit = fitCaptureClock(Float64Array.from(pairs), 48_000)!;
  assertNear((fit.framesPerMs / rate - 1) * 1e6, 0, 1, "rate error (ppm)");
  assertNear(fit.refMs + (3000 * rate - fit.refFrame) / fit.framesPerMs - 1.7e12, 3000, 0.02);
});

Deno.test("capture clock: block-delivered reports are fitted near their lower edge", () => {
  // Blocks of 10 ms; each report names the last block's end, late by 0..10 ms.
  const rate = 48 * 0.99985;
  const pairs: number[] = [];
  let s = 11;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647);
  for (let t = 0; t < 10_000; t += 3 + 3 * rnd()) {
    const block = Math.floor(t / 10);
    pairs.push(block * 10 * rate, 1.7e12 + t);
  }
  const fit = fitCaptureClock(Float64Array.from(pairs), 48_000)!;
  assertNear((fit.framesPerMs / rate - 1) * 1e6, 0, 15, "rate error (ppm)");
  // The block ending at frame F is reported from the time F is captured on.
  const at = fit.refMs + (5000 * rate - fit.refFrame) / fit.framesPerMs - 1.7e12;
  assertNear(at, 5000, 1, "local time of the frame at 5 s");
});

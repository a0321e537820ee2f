/**
 * The three browser engines a browser peer may run on, each proven audible on a recording:
 * Chromium, Firefox ESR and WebKitGTK open the same page through tests/harness/pages.ts, a
 * click plays a 1 kHz tone burst (AudioBufferSourceNode) into the engine's own sink of a
 * private PulseAudio, and the bus recording must hold the tone on that engine's channel and
 * silence on the others. Each test also drives the rest of the common page interface (find
 * by text, fill, waitFor, screenshot) and reports each engine's audio clock facts
 * (`getOutputTimestamp`, latencies, timer step) without judging them.
 */
import { assertEquals, assertNear, assertTrue } from "./assert.ts";
import { alive, descendants } from "./harness/proc.ts";
import { type BusRecording, recordBus, startPulse } from "./harness/pulse.ts";
import {
  adaptWebDriver,
  type Engine,
  ENGINES,
  type OpenedPage,
  openPage,
  type TestPage,
} from "./harness/pages.ts";
import { type LaunchedWebKit, launchWebKit } from "./harness/webkit.ts";

const TONE_HZ = 1000;
const TONE_MS = 500;
/**
 * How far ahead of the click the tone is scheduled (s). WebKitGTK opens its PulseAudio stream
 * 1.0–1.3 s after an AudioContext starts (or resumes) and loses what was scheduled before
 * then: a tone 0.1 s ahead came out as 20–240 ms of its 500 ms, 1 s ahead as 70 ms; from
 * 1.5 s on it was whole. A context that has run for a while plays 0.1 s ahead whole.
 */
const LEAD_S: Record<Engine, number> = { chromium: 0.1, firefox: 0.1, webkit: 2.5 };

/**
 * Nothing plays on load. A click on "Play" creates an AudioContext (or resumes the one made on
 * load with `?early`) and plays a 0.5 amplitude tone burst with 5 ms fades, `?lead=S` seconds
 * ahead.
 */
const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Engines</title><link rel="icon" href="data:,"></head>
<body>
<button type="button" id="play">Play</button>
<label>Name <input id="name" type="text"></label>
<p id="state" role="status">idle</p>
<script>
  window.tone = { clicked: false, done: false };
  const query = new URLSearchParams(location.search);
  const lead = Number(query.get("lead") || 0.1);
  window.ctx = query.has("early") ? new AudioContext() : null;
  window.stateOnLoad = window.ctx ? window.ctx.state : null;
  document.getElementById("play").addEventListener("click", (ev) => {
    const ctx = window.ctx || (window.ctx = new AudioContext());
    const stateAtClick = ctx.state;
    ctx.resume();
    const rate = ctx.sampleRate;
    const n = Math.round(rate * ${TONE_MS / 1000});
    const fade = Math.round(rate * 0.005);
    const buffer = ctx.createBuffer(1, n, rate);
    const d = buffer.getChannelData(0);
    for (let i = 0; i < n; i++) {
      d[i] = 0.5 * Math.min(1, i / fade, (n - 1 - i) / fade) *
        Math.sin(2 * Math.PI * ${TONE_HZ} * i / rate);
    }
    const src = ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(ctx.destination);
    src.onended = () => {
      window.tone.done = true;
      document.getElementById("state").textContent = "done (" + ctx.state + ")";
    };
    src.start(ctx.currentTime + lead);
    window.tone = { clicked: true, done: false, trusted: ev.isTrusted, stateAtClick };
    document.getElementById("state").textContent = "playing";
  });
</script>
</body>
</html>`;

/** The parts of a page's AudioContext that `audioFacts` reads (tests have no DOM types). */
interface PageAudioContext {
  getOutputTimestamp?: () => { contextTime?: number; performanceTime?: number };
  currentTime: number;
  outputLatency?: number;
  baseLatency?: number;
  sampleRate: number;
  state: string;
}

/** What each engine says about its audio clock, reported and not judged (design §6). */
function audioFacts() {
  const ctx = (globalThis as unknown as { ctx: PageAudioContext }).ctx;
  const ts = typeof ctx.getOutputTimestamp === "function" ? ctx.getOutputTimestamp() : null;
  const now = performance.now();
  let step = Infinity;
  let prev = performance.now();
  for (let i = 0; i < 200_000 && step > 0.001; i++) {
    const t = performance.now();
    if (t !== prev) {
      step = Math.min(step, t - prev);
      prev = t;
    }
  }
  return {
    getOutputTimestamp: typeof ctx.getOutputTimestamp,
    contextTimeLagMs: ts ? (ctx.currentTime - (ts.contextTime ?? NaN)) * 1000 : null,
    performanceTimeLagMs: ts ? now - (ts.performanceTime ?? NaN) : null,
    outputLatencyMs: typeof ctx.outputLatency === "number" ? ctx.outputLatency * 1000 : null,
    baseLatencyMs: typeof ctx.baseLatency === "number" ? ctx.baseLatency * 1000 : null,
    sampleRate: ctx.sampleRate,
    state: ctx.state,
    perfNowStepMs: step,
    userAgent: navigator.userAgent,
  };
}

/** The part of a page's `document` the test reads. */
interface PageDocument {
  document: { querySelector(sel: string): { value: string } | null };
}

/** Amplitude of the `hz` component of `x` (Goertzel), as a sine's peak amplitude. */
function toneAmplitude(x: Float32Array, hz: number, rateHz: number): number {
  const w = 2 * Math.PI * hz / rateHz;
  const c = 2 * Math.cos(w);
  let s1 = 0, s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s0 = x[i] + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return 2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - c * s1 * s2)) / x.length;
}

/** The tone on one channel: loudest 20 ms window, how long it lasts, where it starts. */
function analyse(x: Float32Array, rateHz: number) {
  const win = rateHz / 50;
  const amps: number[] = [];
  for (let at = 0; at + win <= x.length; at += win) {
    amps.push(toneAmplitude(x.subarray(at, at + win), TONE_HZ, rateHz));
  }
  const peak = Math.max(0, ...amps);
  const toneMs = amps.filter((a) => a > peak / 2).length * 20;
  let onset = -1;
  for (let i = 0; i < x.length; i++) {
    if (Math.abs(x[i]) > 0.05) {
      onset = i;
      break;
    }
  }
  let maxAbs = 0;
  for (let i = 0; i < x.length; i++) maxAbs = Math.max(maxAbs, Math.abs(x[i]));
  return { peak, toneMs, onset, maxAbs };
}

/** This test process's live child processes (browsers, drivers, Xvfb, recorders). */
function liveChildren(): number[] {
  return descendants(Deno.pid).filter(alive);
}

function serve() {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new URL(req.url).pathname === "/"
        ? new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } })
        : new Response(null, { status: 404 }),
  );
}

const ms = () => performance.timeOrigin + performance.now();

/**
 * Plays the tone by clicking "Play" in `page` and checks the recording: the tone on channel
 * `mine`, silence on every other. Returns click→sound in ms (the LEAD_S lead included).
 */
async function clickAndHear(
  page: TestPage,
  stopRecording: () => Promise<BusRecording>,
  mine: number,
  label: string,
  leadS: number,
): Promise<number> {
  const clickMs = ms();
  await page.click({ text: "Play" });
  const tone = await page.evaluate<{ clicked: boolean; trusted: boolean }>("window.tone");
  assertTrue(tone.clicked, `${label}: the click did not reach the button`);
  assertEquals(tone.trusted, true, `${label}: the click was not a trusted user event`);
  await page.waitFor("window.tone.done", 15_000);
  // The last samples are still in the sink's buffer (GStreamer's too) when `ended` fires.
  await new Promise((r) => setTimeout(r, 800));
  const recording = await stopRecording();
  const results = recording.channels.map((x) => analyse(x, recording.rateHz));
  const me = results[mine];
  const clickToSoundMs = me.onset >= 0 ? recording.realMsOf(me.onset) - clickMs : NaN;
  console.log(
    `${label}: tone peak ${me.peak.toFixed(3)}, ${me.toneMs} ms above half, click→sound ${
      clickToSoundMs.toFixed(0)
    } ms (${leadS * 1000} ms of it scheduled lead); other channels max |x| ${
      results.filter((_, k) => k !== mine).map((r) => r.maxAbs.toExponential(1)).join(", ")
    }; recording ${(recording.channels[0].length / recording.rateHz).toFixed(2)} s`,
  );
  assertTrue(me.peak > 0.1, `${label}: the tone is too quiet or missing (peak ${me.peak})`);
  assertNear(me.toneMs, TONE_MS, 60, `${label}: tone duration (ms)`);
  results.forEach((r, k) => {
    if (k !== mine) {
      assertTrue(r.maxAbs < 1e-4, `${label}: channel ${k} is not silent (max |x| ${r.maxAbs})`);
    }
  });
  return clickToSoundMs;
}

/** The page stopped answering scripts: Firefox ESR's known freeze (see {@link toneTest}). */
class PageFroze extends Error {}

/**
 * Runs `body` while checking every 5 s that `page` still answers a script within 10 s; rejects
 * with {@link PageFroze} when it does not, instead of waiting for the driver's 3 min timeout.
 */
async function watched<T>(page: TestPage, label: string, body: () => Promise<T>): Promise<T> {
  let done = false;
  const watchdog = (async () => {
    while (!done) {
      await new Promise((r) => setTimeout(r, 5000));
      if (done) break;
      const answered = await Promise.race([
        page.evaluate("1").then(() => true, () => true),
        new Promise<false>((r) => setTimeout(() => r(false), 10_000)),
      ]);
      if (!answered && !done) throw new PageFroze(`${label}: the page stopped answering scripts`);
    }
  })();
  try {
    return await Promise.race([body(), watchdog as Promise<never>]);
  } finally {
    done = true;
  }
}

/**
 * One run of the tone test. Firefox ESR's page sometimes stops dead once its audio starts
 * (about 1 in 10 under load; under gdb its main thread waits inside Firefox's audio code): that
 * is reported loudly and tried again with a new browser, up to three times in all, as the
 * swarm rig does.
 */
async function toneTest(engine: Engine) {
  const pulse = await startPulse(ENGINES.length);
  const server = serve();
  const mine = ENGINES.indexOf(engine);
  let opened: OpenedPage | undefined;
  const shot = await Deno.makeTempFile({ suffix: ".png" });
  const rec = recordBus(pulse);
  try {
    const t0 = ms();
    opened = await openPage(engine, {
      pulse,
      sink: mine,
      url: `http://127.0.0.1:${server.addr.port}/?lead=${LEAD_S[engine]}`,
    });
    const launchMs = ms() - t0;
    const { page } = opened;
    const steps = async () => {
      // The rest of the common interface, on the same page.
      await page.fill("#name", "Alex (2)");
      assertEquals(
        await page.evaluate(
          (sel: string) =>
            (globalThis as unknown as PageDocument).document.querySelector(sel)?.value,
          "#name",
        ),
        "Alex (2)",
      );
      assertEquals(await page.evaluate("document.title"), "Engines");
      assertEquals(await page.evaluate(() => Promise.resolve(6 * 7)), 42);
      await page.screenshot(shot);
      const png = await Deno.readFile(shot);
      assertEquals([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "screenshot is a PNG");

      const clickToSound = await clickAndHear(page, rec.stop, mine, engine, LEAD_S[engine]);
      assertEquals(
        await page.evaluate("document.getElementById('state').textContent"),
        "done (running)",
      );

      const facts = await page.evaluate(audioFacts);
      console.log(
        `${engine}: launch + load ${launchMs.toFixed(0)} ms, click→sound ${
          clickToSound.toFixed(0)
        } ms; audio facts ${JSON.stringify(facts)}`,
      );
      // Present in all three engines; only Chromium's is trustworthy (design §6).
      assertEquals(facts.getOutputTimestamp, "function");
    };
    await (engine === "firefox" ? watched(page, engine, steps) : steps());
    assertEquals(await opened.consoleErrors(), []);
  } finally {
    await opened?.close();
    await rec.stop().catch(() => {});
    await server.shutdown();
    await pulse.stop();
    await Deno.remove(shot).catch(() => {});
  }
}

for (const engine of ENGINES) {
  Deno.test({
    name: `${engine}: a click plays a WebAudio tone into its own sink, heard on the bus`,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const before = new Set(liveChildren());
      for (let attempt = 1;; attempt++) {
        try {
          await toneTest(engine);
          break;
        } catch (e) {
          if (!(e instanceof PageFroze) || engine !== "firefox" || attempt >= 3) throw e;
          console.error(`FROZE: ${e.message} (attempt ${attempt}); again with a new browser`);
        }
      }
      const leftover = liveChildren().filter((p) => !before.has(p));
      assertEquals(leftover, [], `${engine} left processes behind`);
    },
  });
}

Deno.test({
  name: "webkit: with MiniBrowser's own autoplay policy, audio waits for a WebDriver click",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const before = new Set(liveChildren());
    const pulse = await startPulse(1);
    const server = serve();
    let webkit: LaunchedWebKit | undefined;
    const rec = recordBus(pulse);
    try {
      webkit = await launchWebKit({ pulse: { env: pulse.env(0) }, autoplay: "default" });
      await webkit.page(`http://127.0.0.1:${server.addr.port}/?early&lead=${LEAD_S.webkit}`);
      const page = adaptWebDriver(webkit.session);
      // Time for the context to start if the policy let it (it does with "allow").
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(await page.evaluate("[window.stateOnLoad, window.ctx.state]"), [
        "suspended",
        "suspended",
      ]);
      await clickAndHear(page, rec.stop, 0, "webkit (default autoplay)", LEAD_S.webkit);
      assertEquals(await page.evaluate("window.tone.stateAtClick"), "suspended");
      assertEquals(await webkit.consoleErrors(), []);
    } finally {
      await webkit?.close();
      await rec.stop().catch(() => {});
      await server.shutdown();
      await pulse.stop();
    }
    const leftover = liveChildren().filter((p) => !before.has(p));
    assertEquals(leftover, [], "webkit left processes behind");
  },
});

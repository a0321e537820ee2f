/**
 * The browser harness end to end: Chromium plays a WebAudio tone into the test's private
 * PulseAudio and the bus recording hears it. If this fails, every browser-peer measurement
 * would be measuring silence.
 */
import { assertEquals, assertNear, assertTrue } from "./assert.ts";
import { launchChromium, type LaunchedChromium } from "./harness/browser.ts";
import { recordBus, startPulse } from "./harness/pulse.ts";

const TONE_HZ = 1000;
const TONE_SEC = 1;

/** Starts a 1 kHz tone on load (no gesture: the autoplay switch must work) and on "Play". */
const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tone</title><link rel="icon" href="data:,"></head>
<body>
<button type="button" id="play">Play</button>
<p id="state" role="status">idle</p>
<script>
  window.toneDone = false;
  function tone() {
    const ctx = new AudioContext();
    const osc = new OscillatorNode(ctx, { frequency: ${TONE_HZ} });
    const gain = new GainNode(ctx, { gain: 0.5 });
    osc.connect(gain).connect(ctx.destination);
    const t0 = ctx.currentTime + 0.1;
    osc.start(t0);
    osc.stop(t0 + ${TONE_SEC});
    osc.onended = () => {
      document.getElementById("state").textContent = "done (" + ctx.state + ")";
      window.toneDone = true;
    };
    document.getElementById("state").textContent = "playing (" + ctx.state + ")";
  }
  document.getElementById("play").addEventListener("click", tone);
  tone();
</script>
</body>
</html>`;

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
  const power = s1 * s1 + s2 * s2 - c * s1 * s2;
  return 2 * Math.sqrt(Math.max(0, power)) / x.length;
}

function rms(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s / Math.max(1, x.length));
}

Deno.test({
  name: "Chromium's WebAudio tone is heard on the test's PulseAudio bus; roles are found by name",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pulse = await startPulse(1);
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) =>
        new URL(req.url).pathname === "/"
          ? new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } })
          : new Response(null, { status: 404 }),
    );
    let chrome: LaunchedChromium | undefined;
    try {
      const rec = recordBus(pulse);
      chrome = await launchChromium({ pulse: { env: pulse.env(0) }, headless: true });
      const page = await chrome.page(`http://127.0.0.1:${server.addr.port}/`);

      assertEquals(await page.getByRole("button", { name: "Play" }).count(), 1);
      assertTrue(await page.getByRole("button", { name: "Play" }).isVisible());

      await page.waitForFunction(() => (globalThis as { toneDone?: boolean }).toneDone, null, {
        timeout: 15_000,
      });
      // The last samples are still in the sink's buffer when `ended` fires.
      await new Promise((r) => setTimeout(r, 400));
      const state = await page.getByRole("status").textContent();
      const recording = await rec.stop();
      assertEquals(state, "done (running)");

      // 20 ms windows: which carry the tone, and how loud is the rest. The idle bus records
      // nothing, so the recording starts when Chromium opens its stream.
      const x = recording.channels[0];
      const win = recording.rateHz / 50;
      const windows: { amp: number; rms: number }[] = [];
      for (let at = 0; at + win <= x.length; at += win) {
        const w = x.subarray(at, at + win);
        windows.push({ amp: toneAmplitude(w, TONE_HZ, recording.rateHz), rms: rms(w) });
      }
      const peak = Math.max(...windows.map((w) => w.amp));
      const toneWindows = windows.filter((w) => w.amp > peak / 2).length;
      const quiet = windows.filter((w) => w.amp < 0.01).map((w) => w.rms);
      const noise = quiet.length ? Math.max(...quiet) : 0;
      // Share of a window's energy that is the 1 kHz sine (1 for a clean tone), over the
      // windows wholly inside it (partial ones leak into other frequencies).
      const purity = Math.min(
        ...windows.filter((w) => w.amp > 0.9 * peak).map((w) => (w.amp / Math.SQRT2 / w.rms) ** 2),
      );
      console.log(
        `tone: peak ${peak.toFixed(3)}, ${toneWindows * 20} ms above half, purity ${
          purity.toFixed(3)
        }, noise rms ${noise.toExponential(1)} over ${quiet.length * 20} ms, recording ${
          (x.length / recording.rateHz).toFixed(2)
        } s`,
      );
      // Stereo 0.5 down-mixed into the mono device sink: a clear tone, far above the floor.
      assertTrue(peak > 0.1, `the tone is too quiet or missing: peak amplitude ${peak}`);
      assertNear(toneWindows * 20, TONE_SEC * 1000, 80, "tone duration (ms)");
      assertTrue(purity > 0.9, `the sound is not a clean tone: purity ${purity}`);
      assertTrue(quiet.length >= 10, "no tone-free stretch was recorded to compare with");
      assertTrue(noise < peak / 100, `noise ${noise} is within 40 dB of the tone ${peak}`);

      assertEquals(chrome.consoleErrors(), []);
    } finally {
      await chrome?.close();
      await server.shutdown();
      await pulse.stop();
    }
  },
});

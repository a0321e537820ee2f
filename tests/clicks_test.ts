/**
 * The click test, heard: a host and a native peer play into a private PulseAudio whose bus is
 * recorded, one channel per device. With the click test on (asked for by the peer), both
 * channels tick once a second at the whole host second, together; a speaker delay of 30 ms on
 * the peer brings its ticks 30 ms earlier on the wire, so that they leave its (slow) speaker
 * with the host's. A phone's page (Chromium) ticks with the host too, its toggle turning the
 * test on for everyone.
 */
import { assertEquals, assertNear, assertTrue } from "./assert.ts";
import { launchChromium } from "./harness/browser.ts";
import { AppProcess } from "./harness/proc.ts";
import { recordBus, startPulse } from "./harness/pulse.ts";
import { CLICK_MS, clickAt } from "../audio/player.ts";
import { freePort } from "./harness/ports.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();
const RATE = 48000;

/** The tick as a device renders it when the second falls exactly on a frame. */
const TEMPLATE = Float32Array.from(
  { length: Math.ceil((CLICK_MS * RATE) / 1000) },
  (_, i) => clickAt((i * 1000) / RATE),
);

/**
 * Where each tick begins in `x` between samples `from` and `to`, in fractional samples: a tick
 * is found where the signal first rises after 100 ms of quiet, then placed by correlating with
 * the tick's own shape (parabolic interpolation around the peak), to a small part of a sample.
 */
function tickStarts(x: Float32Array, from: number, to: number): number[] {
  const starts: number[] = [];
  const quietFor = RATE / 10;
  let quiet = quietFor;
  for (let i = Math.max(from, 64); i < Math.min(to, x.length - TEMPLATE.length - 64); i++) {
    if (Math.abs(x[i]) < 0.01) {
      quiet++;
      continue;
    }
    if (quiet >= quietFor) {
      const corr = (lag: number) => {
        let s = 0;
        for (let k = 0; k < TEMPLATE.length; k++) s += TEMPLATE[k] * x[i + lag + k];
        return s;
      };
      let best = -32, bestV = -Infinity;
      for (let lag = -32; lag <= 8; lag++) {
        const v = corr(lag);
        if (v > bestV) [best, bestV] = [lag, v];
      }
      const y0 = corr(best - 1), y2 = corr(best + 1);
      const den = y0 - 2 * bestV + y2;
      starts.push(i + best + (den !== 0 ? (0.5 * (y0 - y2)) / den : 0));
    }
    quiet = 0;
  }
  return starts;
}

/** Pairs each host tick with the peer tick nearest to it (within 100 ms): peer − host, in ms. */
function lagsMs(host: number[], peer: number[]): number[] {
  const out: number[] = [];
  for (const h of host) {
    const p = peer.reduce((a, b) => (Math.abs(b - h) < Math.abs(a - h) ? b : a), Infinity);
    if (Math.abs(p - h) < RATE / 10) out.push(((p - h) * 1000) / RATE);
  }
  return out;
}

function median(xs: number[]): number {
  return [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
}

Deno.test({
  name: "click test: host and peer tick together once a second; the peer's speaker delay of " +
    "30 ms moves its ticks 30 ms earlier in the recording",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-clicks-" });
    const pulse = await startPulse(2);
    const procs: AppProcess[] = [];
    try {
      const port = freePort();
      const rec = recordBus(pulse);
      const host = new AppProcess([
        ...["host", "--headless", "--name", "Clicks", "--as", "Host", "--audio", "pulse"],
        ...["--port", String(port), "--bind", "127.0.0.1", "--no-advertise"],
        ...["--config-dir", `${tmp}/hostcfg`],
      ], { env: pulse.env(0) });
      procs.push(host);
      await host.waitFor((e) => e.type === "session", 20000, "host");
      const peer = new AppProcess([
        ...["join", "--headless", `127.0.0.1:${port}`, "--as", "Pat", "--audio", "pulse"],
        ...["--cache-dir", `${tmp}/cache`, "--config-dir", `${tmp}/peercfg`],
      ], { env: pulse.env(1) });
      procs.push(peer);
      await host.waitFor(
        (e) => e.type === "peers" && (e.peers as { clock: string }[])[0]?.clock === "green",
        15000,
        "clock",
      );
      await sleep(3000);
      // The peer asks; the host turns it on for the jam.
      await peer.send("clicks on");
      await host.waitFor((e) => e.type === "clicks" && e.on === true, 5000, "host ticks");
      await peer.waitFor((e) => e.type === "clicks" && e.on === true, 5000, "peer ticks");
      const marks = [now()];
      await sleep(5200);
      marks.push(now());
      await peer.send("delay 30");
      await peer.waitFor((e) => e.type === "device" && e.speakerDelayMs === 30, 5000, "delay");
      const changed = now();
      await sleep(4700);
      marks.push(now());
      await host.send("clicks off");
      await peer.waitFor((e) => e.type === "clicks" && e.on === false, 5000, "peer stops");
      const off = now();
      await sleep(2500);
      marks.push(now());
      await peer.quit();
      await host.quit();
      const r = await rec.stop();

      const phase = (fromMs: number, toMs: number) => {
        const a = Math.floor(r.sampleAt(fromMs)), b = Math.floor(r.sampleAt(toMs));
        return { host: tickStarts(r.channels[0], a, b), peer: tickStarts(r.channels[1], a, b) };
      };
      const report: string[] = [];
      // Together: before the delay, every tick within 1 ms of the host's.
      const together = phase(marks[0] + 300, marks[1]);
      const lagA = lagsMs(together.host, together.peer);
      report.push(`together: peer − host ${lagA.map((l) => l.toFixed(3)).join(", ")} ms`);
      // Once a second, on both devices (the sink's clock is within ~0.1 ms/s of the system's).
      const spacing = Object.entries(together).map(([who, ticks]) => {
        const gaps = ticks.slice(1).map((t, i) => ((t - ticks[i]) * 1000) / RATE);
        report.push(`${who} tick spacing ${gaps.map((g) => g.toFixed(3)).join(", ")} ms`);
        return { who, ticks, gaps };
      });
      // At the whole host second (the host's clock is this machine's): the recorder's own
      // placement is only good to about a chunk, so this is loose; the pairs above are exact.
      const offSecond = together.host.map((t) => {
        const ms = r.realMsOf(t) % 1000;
        return ms > 500 ? ms - 1000 : ms;
      });
      report.push(
        `host ticks vs whole seconds, by the recorder's clock: ${
          offSecond.map((x) => x.toFixed(1)).join(", ")
        } ms (recorder chunk ${r.chunkMs.toFixed(1)} ms)`,
      );
      // The speaker delay: 30 ms earlier (skipping 0.5 s after the change for the realign).
      const delayed = phase(changed + 500, marks[2]);
      const lagB = lagsMs(delayed.host, delayed.peer);
      report.push(`with 30 ms delay: peer − host ${lagB.map((l) => l.toFixed(3)).join(", ")} ms`);
      // Off: no more ticks, on either device, from a beat after the command.
      const quiet = phase(off + 300, marks[3]);
      report.push(`after off: ${quiet.host.length} + ${quiet.peer.length} ticks`);
      console.log(report.join("\n"));
      for (const { who, ticks, gaps } of spacing) {
        assertTrue(ticks.length >= 4, `${who}: ${ticks.length} ticks in 5 s`);
        assertNear(median(gaps), 1000, 0.5, `${who} ticks once a second (median)`);
        // One tick may be moved by a hiccup as far as the pairing below allows (2 ms).
        for (const g of gaps) assertNear(g, 1000, 2, `${who} ticks once a second`);
      }
      for (const x of offSecond) assertNear(x, 0, 25, "ticks fall on whole host seconds");
      // The median must sit on the mark; a single tick may be off by a scheduling hiccup of the
      // loaded machine (CI once saw one tick 1.15 ms off while the rest were within 0.2 ms).
      assertTrue(lagA.length >= 4, `paired ticks: ${lagA.length}`);
      assertNear(median(lagA), 0, 0.5, "host and peer tick together (median)");
      for (const l of lagA) assertNear(l, 0, 2, "host and peer tick together");
      assertTrue(lagB.length >= 3, `paired ticks with the delay: ${lagB.length}`);
      assertNear(median(lagB), -30, 0.5, "the peer ticks 30 ms early on the wire (median)");
      for (const l of lagB) assertNear(l, -30, 2, "the peer ticks 30 ms early on the wire");
      assertEquals([quiet.host.length, quiet.peer.length], [0, 0], "silent once off");
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      await pulse.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "click test in a browser: the page's Click test turns it on for the jam and Chromium " +
    "ticks with the host, within 2 ms (median)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-clicks-" });
    const pulse = await startPulse(2);
    const port = freePort();
    const host = new AppProcess([
      ...["host", "--headless", "--name", "Clicks", "--as", "Host", "--audio", "pulse"],
      ...["--port", String(port), "--bind", "127.0.0.1", "--no-advertise"],
      ...["--config-dir", `${tmp}/hostcfg`, "--log-file", `${tmp}/host.log`],
    ], { env: pulse.env(0) });
    const rec = recordBus(pulse);
    const browser = await launchChromium({ pulse: { env: pulse.env(1) } });
    try {
      await host.waitFor((e) => e.type === "session", 30000, "host");
      const page = await browser.page(`http://127.0.0.1:${port}/`);
      await page.getByLabel("Your name").fill("Phone");
      await page.getByRole("button", { name: "Join" }).click();
      await host.waitFor(
        (e) => e.type === "peers" && (e.peers as { clock: string }[])[0]?.clock === "green",
        20000,
        "the page's clock",
      );
      // A young output's timing swings for its first seconds: with 4 s here a CI run's page
      // ticked 2.5 ms after the host (median; 0.1-0.3 ms on an idle machine). As in the
      // browser peer test, Chromium's output gets 20 s before it is measured.
      await sleep(20_000);
      const toggle = page.getByRole("button", { name: "Click test" });
      assertEquals(await toggle.getAttribute("aria-pressed"), "false");
      await toggle.click();
      await host.waitFor((e) => e.type === "clicks" && e.on === true, 5000, "host ticks");
      await page.locator("button[aria-label='Click test'][aria-pressed=true]").waitFor();
      const from = now();
      await sleep(8200);
      const to = now();
      await toggle.click();
      await host.waitFor((e) => e.type === "clicks" && e.on === false, 5000, "off again");
      assertEquals(browser.consoleErrors(), []);
      const r = await rec.stop();
      const a = Math.floor(r.sampleAt(from + 300)), b = Math.floor(r.sampleAt(to));
      const hostTicks = tickStarts(r.channels[0], a, b);
      const pageTicks = tickStarts(r.channels[1], a, b);
      const lags = lagsMs(hostTicks, pageTicks);
      console.log(`Chromium − host: ${lags.map((l) => l.toFixed(3)).join(", ")} ms`);
      assertTrue(hostTicks.length >= 7, `host: ${hostTicks.length} ticks in 8 s`);
      assertTrue(lags.length >= 7, `paired ticks: ${lags.length}`);
      // Chromium was measured within 1.3 ms of a native host, settling to ±0.6 ms; under load
      // a single tick has come 2.7 ms off, so one tick is held to the sync tests' 10 ms.
      assertNear(median(lags), 0, 2, "the page ticks with the host (median)");
      for (const l of lags) assertNear(l, 0, 10, "every tick of the page");
    } finally {
      await browser.close();
      host.kill();
      await host.exited;
      await rec.stop().catch(() => {});
      await pulse.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

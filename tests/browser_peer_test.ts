/**
 * Browser peers, proven on real browsers and a real sound server: a native headless host plays
 * into its own PulseAudio sink; Chromium, Firefox ESR and WebKitGTK open the host's page, type a
 * name, tap Join and play into sinks of their own. That they play the track in sync with the
 * host is read from one recording of every sink (design §3: the recorder's timing cancels out).
 */
import { Buffer } from "node:buffer";
import type { Page } from "playwright-core";
import { assertEquals, assertNear, assertTrue } from "./assert.ts";
import type { CalibratedDevice } from "../session/commands.ts";
import { launchChromium } from "./harness/browser.ts";
import { hostProcess, peerProcess, rawPeer } from "./harness/jam.ts";
import { type Engine, type OpenedPage, openPage } from "./harness/pages.ts";
import type { AppProcess, Event } from "./harness/proc.ts";
import {
  type BusRecording,
  pactl,
  type PrivatePulse,
  recordBus,
  startPulse,
} from "./harness/pulse.ts";
import { makeNoiseMp3 } from "./harness/tracks.ts";
import { lagsBehind, lagSeries, percentile } from "./harness/xcorr.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowMs = () => performance.timeOrigin + performance.now();

/** A headless host playing into sink 0 of a fresh PulseAudio with `devices` sinks. */
/** Play time before a page's lag is held to its bound (its timing is reported, not asserted). */
const SETTLE_MS = 8000;

async function startJam(
  devices: number,
  tracks: { name: string; seconds: number }[],
  hostArgs: string[] = [],
) {
  const pulse = await startPulse(devices);
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-browser-" });
  const files = tracks.map((t) => `${tmp}/${t.name}.mp3`);
  await Promise.all(files.map((f, i) => makeNoiseMp3(f, tracks[i].seconds)));
  const { p: host, port } = hostProcess(["--log-file", `${tmp}/host.log`, ...hostArgs], {
    env: pulse.env(0),
    audio: "pulse",
  });
  await host.waitFor((e) => e.type === "session", 30000, "the host's session");
  for (const f of files) {
    await host.send(`add ${f}`);
    await host.waitFor((e) => e.type === "track-ready" && e.fileName === f.split("/").pop());
  }
  return { pulse, tmp, host, port, url: `http://127.0.0.1:${port}/`, files };
}

/** Sends `line` to the host and waits for the first event after it that matches `pred`. */
async function command(host: AppProcess, line: string, pred: (e: Event) => boolean) {
  const from = host.events.length;
  await host.send(line);
  return host.waitFor((e) => pred(e) && host.events.indexOf(e) >= from, 15000, `"${line}" done`);
}

/** Waits until the host has heard from `name` that the current track is ready to play. */
function readyOn(host: AppProcess, name: string, timeoutMs = 30000) {
  return host.waitFor(
    (e) => e.type === "track-ready" && e.peer === name,
    timeoutMs,
    `${name} to have the track ready`,
  );
}

/**
 * Waits for `name`'s track to be ready; false if instead its page stopped answering (a frozen
 * page); throws if it is neither ready nor frozen.
 */
async function readyOrFrozen(host: AppProcess, o: OpenedPage, name: string): Promise<boolean> {
  try {
    await readyOn(host, name, 20000);
    return true;
  } catch (e) {
    const answer = await Promise.race([
      o.page.evaluate("1").then(() => "alive", () => "frozen"),
      sleep(5000).then(() => "frozen"),
    ]);
    if (answer === "frozen") return false;
    throw e;
  }
}

/** |lag| of device `k` against the host (channel 0) in every window where both have sound. */
function lagsOf(rec: BusRecording, k: number, maxLagMs: number, fromSec = 0, toSec = Infinity) {
  const [a, b] = [rec.channels[0], rec.channels[k]];
  const from = Math.round(fromSec * rec.rateHz);
  const to = Math.min(a.length, Math.round(toSec * rec.rateHz));
  return lagSeries(a.subarray(from, to), b.subarray(from, to), { maxLagMs }).points.map((p) => ({
    atSec: p.atSec + fromSec,
    lagMs: p.lagMs,
  }));
}

/** Root-mean-square of device `k` between two real times. */
function rmsBetween(rec: BusRecording, k: number, fromMs: number, toMs: number): number {
  const x = rec.channels[k];
  const i0 = Math.max(0, Math.round(rec.sampleAt(fromMs)));
  const i1 = Math.min(x.length, Math.round(rec.sampleAt(toMs)));
  let s = 0;
  for (let i = i0; i < i1; i++) s += x[i] * x[i];
  return Math.sqrt(s / Math.max(1, i1 - i0));
}

/** What the host and pages said, for a failure's output. */
function dump(host: AppProcess) {
  const quiet = new Set(["peers", "transfer", "health", "clock"]);
  console.error(
    JSON.stringify(host.events.filter((e) => !quiet.has(e.type)).slice(-30)).slice(0, 5000),
    host.stderr.slice(-1500),
  );
}

async function cleanUp(
  jam: { pulse: PrivatePulse; tmp: string; host: AppProcess },
  rec?: { stop(): Promise<BusRecording> },
) {
  jam.host.kill();
  await jam.host.exited;
  await rec?.stop().catch(() => {});
  await jam.pulse.stop();
  await Deno.remove(jam.tmp, { recursive: true }).catch(() => {});
}

/** Opens the host's page in `engine` on sink `k` and joins as `name`. */
async function joinFrom(engine: Engine, jam: { pulse: PrivatePulse; url: string }, k: number) {
  const opened = await openPage(engine, { pulse: jam.pulse, sink: k, url: jam.url });
  const name = `${engine[0].toUpperCase()}${engine.slice(1)} page`;
  await opened.page.fill("input[name=name]", name);
  await opened.page.click({ text: "Join" });
  return { opened, name };
}

Deno.test({
  name: "Chromium, Firefox ESR and WebKitGTK each join a native host from its page and play " +
    "the track with it: after 8 s Chromium within 10 ms, Firefox within 20 ms, WebKit the right part",
  ...opts,
  async fn() {
    const jam = await startJam(4, [{ name: "Noise", seconds: 30 }]);
    const rec = recordBus(jam.pulse);
    const pages: OpenedPage[] = [];
    const engines: Engine[] = ["chromium", "firefox", "webkit"];
    const plays: { engine: Engine; k: number; fromMs: number; toMs: number }[] = [];
    try {
      // One engine at a time (three browsers and a host at once overload two cores), each on
      // its own sink, each joining the same jam, which plays the track for it.
      for (const [i, engine] of engines.entries()) {
        let { opened, name } = await joinFrom(engine, jam, i + 1);
        pages.push(opened);
        if (!(await readyOrFrozen(jam.host, opened, name))) {
          // Firefox ESR's page now and then stops dead right after Join, its main thread
          // waiting on Firefox's own audio IPC (1 in 3–6 runs here, never when run alone).
          // Said loudly, and tried once more with a fresh browser; a second freeze fails.
          console.warn(`${engine}'s page froze after Join; trying once more with a new browser`);
          await opened.close();
          ({ opened, name } = await joinFrom(engine, jam, i + 1));
          pages.push(opened);
          await readyOn(jam.host, name);
        }
        // Every page is a peer like any other, marked as a browser in the host's list.
        const list = await jam.host.waitFor((e) =>
          e.type === "peers" &&
          (e.peers as { name: string; client?: string }[]).some((p) =>
            p.name === name && p.client === "browser"
          )
        );
        assertTrue(list);
        await opened.page.waitFor(`document.body.innerText.includes("Hosted by Alex")`, 10000);
        // A young audio context's timing swings by several ms for its first seconds (Chromium,
        // measured by the benchmark, which reports that phase): this test is about the steady
        // state, so the page has a few seconds first. Chromium's page has been seen starting
        // 43 ms early and converging over ~20 s (two runs in eight, one of them in CI): it gets
        // 20 s. That phase is an open problem, reported by the benchmark, not hidden there.
        await sleep(engine === "chromium" ? 20_000 : 4000);
        const started = await command(jam.host, "play", (e) => e.type === "playing");
        await sleep(SETTLE_MS + 8000);
        const stopped = await command(jam.host, "stop", (e) => e.type === "stopped");
        plays.push({
          engine,
          k: i + 1,
          fromMs: started.atHostMs as number,
          toMs: stopped.atHostMs as number,
        });
        assertEquals(await opened.consoleErrors(), []);
        await opened.close();
      }
      const recording = await rec.stop();
      const report: string[] = [];
      for (const p of plays) {
        const webkit = p.engine === "webkit";
        const sec = (ms: number) => recording.sampleAt(ms) / recording.rateHz;
        const all = lagsOf(recording, p.k, webkit ? 250 : 60, sec(p.fromMs), sec(p.toMs));
        // The steady state is asserted; the first seconds are reported (a young context under
        // load has been seen 30 ms off, converging within 9 s: the benchmark's "in sync" time).
        const settled = sec(p.fromMs + SETTLE_MS);
        const lags = all.filter((l) => l.atSec >= settled);
        const early = all.filter((l) => l.atSec < settled).map((l) => Math.abs(l.lagMs));
        const p95 = percentile(lags.map((l) => Math.abs(l.lagMs)), 95);
        report.push(
          `${p.engine} ${lags.length} windows, |lag| p95 ${p95.toFixed(2)} ms (first ${
            SETTLE_MS / 1000
          } s: max ${early.length ? Math.max(...early).toFixed(1) : "-"} ms)`,
        );
        const series = all.map((l) => l.lagMs.toFixed(1)).join(" ");
        assertTrue(lags.length >= 10, `${p.engine}: ${lags.length} windows with sound on both`);
        // Firefox reports a latency that is off by a constant that differs per audio context
        // (−4 to +14 ms in the benchmark): its bound is wider until calibration removes it.
        const bound = webkit ? 250 : p.engine === "firefox" ? 20 : 10;
        assertTrue(p95 <= bound, `${p.engine} is ${p95.toFixed(2)} ms off the host: ${series}`);
      }
      console.log(report.join("; "));
    } catch (e) {
      dump(jam.host);
      for (const p of pages) {
        const state = await p.page.evaluate(
          "JSON.stringify({ debug: window.phaselock?.debug(), text: document.body.innerText })",
        ).catch((e) => `${e}`);
        console.error(p.page.engine, `${state}`.slice(0, 3000), await p.consoleErrors());
      }
      throw e;
    } finally {
      await Promise.all(pages.map((p) => p.close()));
      await cleanUp(jam, rec);
    }
  },
});

Deno.test({
  name: "a browser is the 6th device: it is refused with the host's sentence and stays on " +
    "the join page",
  ...opts,
  async fn() {
    const jam = await startJam(1, []);
    const browser = await launchChromium({ pulse: { env: jam.pulse.env(0) } });
    try {
      const fillers = await Promise.all([1, 2, 3, 4, 5].map((i) => rawPeer(jam.port, `P${i}`)));
      assertTrue(fillers.every((f) => f.first.type === "welcome"));
      const page = await browser.page(jam.url);
      await page.getByLabel("Your name").fill("Sixth");
      await page.getByRole("button", { name: "Join" }).click();
      await page.getByText(/refused to let you join: "Test Jam" is full: it already has 5 of 5/)
        .waitFor({ timeout: 10000 });
      await page.getByRole("button", { name: "Join" }).waitFor();
      for (const f of fillers) f.ws.close();
      assertEquals(browser.consoleErrors(), []);
    } catch (e) {
      dump(jam.host);
      throw e;
    } finally {
      await browser.close();
      await cleanUp(jam);
    }
  },
});

/** Chromium joined to a fresh jam (sink 1), for the tests that use Playwright's own tools. */
async function chromiumJam(tracks: { name: string; seconds: number }[], name = "Phone") {
  const jam = await startJam(2, tracks);
  const rec = recordBus(jam.pulse);
  const browser = await launchChromium({ pulse: { env: jam.pulse.env(1) } });
  const page = await browser.page("about:blank");
  return { jam, rec, browser, page, name };
}

type ChromiumJam = Awaited<ReturnType<typeof chromiumJam>>;

/** Runs `fn` on a fresh Chromium jam; on failure prints what the host said; always cleans up. */
async function withChromiumJam(
  tracks: { name: string; seconds: number }[],
  fn: (c: ChromiumJam & { page: Page }) => Promise<void>,
) {
  const c = await chromiumJam(tracks);
  try {
    await fn(c);
  } catch (e) {
    dump(c.jam.host);
    throw e;
  } finally {
    await c.browser.close();
    await cleanUp(c.jam, c.rec);
  }
}

async function join(page: Page, url: string, name: string) {
  await page.goto(url);
  await page.getByLabel("Your name").fill(name);
  await page.getByRole("button", { name: "Join" }).click();
}

Deno.test({
  name: "pause, seek and skip on the host are heard on the browser: silent while paused, in " +
    "sync after each change",
  ...opts,
  async fn() {
    await withChromiumJam(
      [{ name: "First", seconds: 20 }, { name: "Second", seconds: 12 }],
      async (c) => {
        const { jam, page } = c;
        await join(page, jam.url, c.name);
        await readyOn(jam.host, c.name);
        // A young page's timing swings for its first seconds (a CI run: 26 ms when played 3 s
        // after joining); the changes below are what this test is about.
        await sleep(SETTLE_MS);
        await jam.host.send("play");
        await sleep(3000);
        const paused = await command(jam.host, "pause", (e) => e.type === "paused");
        await page.getByText("paused", { exact: false }).first().waitFor({ timeout: 5000 })
          .catch(() => {}); // the word is the UI's; the sound below is what counts
        await sleep(2000);
        const resumed = await command(jam.host, "play", (e) => e.type === "playing");
        await sleep(2500);
        const sought = await command(jam.host, "seek 12", (e) => e.type === "playing");
        await sleep(2500);
        // The next track must be ready on the browser before the host lets it play.
        await jam.host.waitFor(
          (e) =>
            e.type === "track-ready" && e.peer === c.name &&
            `${e.fileName}`.startsWith("Second"),
          20000,
          "the next track on the browser",
        );
        const skipped = await command(jam.host, "skip", (e) => e.type === "playing");
        assertEquals(skipped.title, "Second");
        await sleep(3000);
        const rec = await c.rec.stop();

        const pauseAt = paused.atHostMs as number, resumeAt = resumed.atHostMs as number;
        const quiet = rmsBetween(rec, 1, pauseAt + 300, resumeAt - 300);
        const loud = rmsBetween(rec, 1, resumeAt + 300, resumeAt + 2000);
        assertTrue(quiet < 1e-3, `the browser was heard while paused (rms ${quiet})`);
        assertTrue(loud > 0.02, `the browser is silent after resuming (rms ${loud})`);
        const lags = lagsOf(rec, 1, 40);
        const after = (ms: number) =>
          lags.filter((l) => l.atSec > rec.sampleAt(ms + 300) / rec.rateHz);
        for (
          const [what, at] of [
            ["resume", resumeAt],
            ["seek", sought.atHostMs as number],
            ["skip", skipped.atHostMs as number],
          ] as const
        ) {
          const w = after(at);
          assertTrue(w.length >= 2, `nothing in sync heard after ${what}`);
        }
        const p95 = percentile(lags.map((l) => Math.abs(l.lagMs)), 95);
        console.log(`pause/seek/skip: ${lags.length} windows, |lag| p95 ${p95.toFixed(2)} ms`);
        assertTrue(
          p95 <= 10,
          `the browser is ${p95.toFixed(2)} ms off the host: ${
            lags.map((l) => `${l.atSec.toFixed(1)}s:${l.lagMs.toFixed(1)}`).join(" ")
          }`,
        );
        assertEquals(c.browser.consoleErrors(), []);
      },
    );
  },
});

Deno.test({
  name: 'the host ending the jam or vanishing: the page says "Host disconnected — session ' +
    'ended" and offers to join again',
  ...opts,
  async fn() {
    for (const how of ["quit", "killed"] as const) {
      await withChromiumJam([], async (c) => {
        await join(c.page, c.jam.url, c.name);
        await c.page.getByText("Hosted by Alex").waitFor({ timeout: 10000 });
        const t0 = nowMs();
        c.jam.host.kill(how === "quit" ? "SIGTERM" : "SIGKILL");
        await c.page.getByText("Host disconnected — session ended").waitFor({ timeout: 15000 });
        console.log(`host ${how}: the page said so after ${(nowMs() - t0).toFixed(0)} ms`);
        await c.page.getByRole("button", { name: "Join" }).waitFor();
        // Chromium logs each refused reconnection attempt; nothing else may appear.
        const refused = /WebSocket connection to .* failed: .*ERR_CONNECTION_REFUSED/;
        assertEquals(c.browser.consoleErrors().filter((e) => !refused.test(e)), []);
      });
    }
  },
});

Deno.test({
  name: "the page offline for 5 s: the music goes on, it rejoins when the network is back, " +
    "and plays in sync again",
  ...opts,
  async fn() {
    await withChromiumJam([{ name: "Long", seconds: 30 }], async (c) => {
      const { jam, page } = c;
      await join(page, jam.url, c.name);
      await readyOn(jam.host, c.name);
      await sleep(3000);
      await jam.host.send("play");
      await sleep(3000);
      await page.context().setOffline(true);
      await page.getByText(/You are offline|Lost the connection/).waitFor({ timeout: 10000 });
      await sleep(5000);
      await page.context().setOffline(false);
      await page.getByText("Back in the jam.").waitFor({ timeout: 15000 });
      const backAt = nowMs();
      // The host saw it go and come back: the link really was down.
      assertTrue(jam.host.count((e) => e.type === "peer-left" && e.name === c.name) >= 1);
      await sleep(6000);
      const rec = await c.rec.stop();
      const lags = lagsOf(rec, 1, 40).filter((l) =>
        l.atSec > rec.sampleAt(backAt + 1000) / rec.rateHz
      );
      const p95 = percentile(lags.map((l) => Math.abs(l.lagMs)), 95);
      console.log(`after 5 s offline: ${lags.length} windows, |lag| p95 ${p95.toFixed(2)} ms`);
      assertTrue(lags.length >= 5, `only ${lags.length} windows in sync after coming back`);
      assertTrue(p95 <= 10, `${p95.toFixed(2)} ms off the host after coming back`);
      assertEquals(c.browser.consoleErrors(), []);
    });
  },
});

Deno.test({
  name: "a corrupted track download is fetched again and never played",
  ...opts,
  async fn() {
    await withChromiumJam([{ name: "Clean", seconds: 12 }], async (c) => {
      const { jam, page } = c;
      let corrupted = 0;
      await page.route("**/tracks/**", async (route) => {
        if (corrupted > 0) return route.continue();
        corrupted++;
        const res = await route.fetch();
        const body = new Uint8Array(await res.body());
        for (let i = 4096; i < body.length; i += 997) body[i] ^= 0x5a;
        await route.fulfill({ response: res, body: Buffer.from(body) });
      });
      await join(page, jam.url, c.name);
      await page.getByText(/Retrying "Clean\.mp3".*checksum does not match/).waitFor({
        timeout: 15000,
      });
      await readyOn(jam.host, c.name);
      assertEquals(corrupted, 1);
      await sleep(3000);
      await jam.host.send("play");
      await sleep(6000);
      const rec = await c.rec.stop();
      // The right track: it correlates with the host's in most windows, within the young
      // context's first-seconds swing (up to ~30 ms under load; the sync tests hold the steady
      // state to 10 ms). A corrupted track would not correlate at all.
      const lags = lagsOf(rec, 1, 40);
      const p95 = percentile(lags.map((l) => Math.abs(l.lagMs)), 95);
      assertTrue(lags.length >= 8, `only ${lags.length} windows of the right track`);
      assertTrue(p95 <= 35, `${p95.toFixed(2)} ms off the host`);
      assertEquals(c.browser.consoleErrors(), []);
    });
  },
});

Deno.test({
  name: "a page that joins again plays the track it kept: no second download",
  ...opts,
  async fn() {
    await withChromiumJam([{ name: "Kept", seconds: 8 }], async (c) => {
      const { jam, page } = c;
      const downloads = () =>
        jam.host.count((e) =>
          e.type === "transfer" && e.peer === c.name && e.state === "downloading"
        );
      await join(page, jam.url, c.name);
      await readyOn(jam.host, c.name);
      assertTrue(downloads() >= 1, "the first visit downloads the track");
      const before = downloads();
      await page.getByRole("button", { name: "Leave" }).click();
      await jam.host.waitFor((e) => e.type === "peer-left" && e.name === c.name);
      // A fresh page load, as when a phone opens the address again.
      const from = jam.host.events.length;
      await join(page, jam.url, c.name);
      await jam.host.waitFor(
        (e) => jam.host.events.indexOf(e) >= from && e.type === "track-ready" && e.peer === c.name,
        15000,
        "the kept track to be ready",
      );
      assertEquals(downloads(), before, "the track was downloaded again");
      assertEquals(c.browser.consoleErrors(), []);
    });
  },
});

Deno.test({
  name: "calibration by the host's microphone: a native peer with a hidden 37 ms latency and a " +
    "Chromium page with a hidden 120 ms are heard that late; calibrate measures every device " +
    "and sets delays that bring them together; a muted device makes it refuse and change nothing",
  ...opts,
  async fn() {
    const jam = await startJam(3, [{ name: "Noise", seconds: 60 }], ["--mic", "bus.monitor"]);
    const rec = recordBus(jam.pulse);
    const peerCfg = `${jam.tmp}/peer-cfg`;
    const peer = peerProcess(`127.0.0.1:${jam.port}`, "Slow speaker", `${jam.tmp}/peer`, {
      env: jam.pulse.env(1),
      audio: "pulse",
      extra: ["--sim-output-latency-ms", "37", "--config-dir", peerCfg],
    });
    const browser = await launchChromium({ pulse: { env: jam.pulse.env(2) } });
    try {
      const page = await browser.page("about:blank");
      await join(page, `${jam.url}?simOutputLatencyMs=120`, "Slow phone");
      await readyOn(jam.host, "Slow speaker");
      await readyOn(jam.host, "Slow phone");
      await sleep(4000); // the page's young context settles (as in the sync test above)
      const report: string[] = [];

      // Before: the hidden latencies are heard in the music.
      const started = await command(jam.host, "play", (e) => e.type === "playing");
      await sleep(SETTLE_MS + 4000);
      const paused = await command(jam.host, "pause", (e) => e.type === "paused");

      // Calibrate (paused: the room is quiet). The host hears itself first, then each peer.
      const done = await command(
        jam.host,
        "calibrate",
        (e) => e.type === "calibration" && e.state !== "running",
      );
      assertEquals(done.state, "done", JSON.stringify(done));
      const cal = done.devices as CalibratedDevice[];
      const by = Object.fromEntries(cal.map((d) => [d.name, d]));
      report.push(
        `calibration in ${done.tookMs} ms: ` +
          cal.map((d) =>
            `${d.name} ${d.latencyMs?.toFixed(2)} ms (${d.confidence}) → delay ${d.delayMs}`
          ).join(", "),
      );
      // Relative to the quickest device (the host): 37 and 120 ms, and Chromium's own error.
      assertNear(by.Alex.latencyMs!, 0, 0.01, "the host is the quickest");
      assertNear(by["Slow speaker"].latencyMs!, 37, 1, "the native peer's latency");
      assertNear(by["Slow phone"].latencyMs!, 120, 10, "the page's latency");
      for (const d of cal) assertNear(d.delayMs, d.latencyMs!, 0.01, `${d.name}'s delay`);
      // Each peer applies its delay and reports it back; the native peer remembers it.
      await jam.host.waitFor(
        (e) =>
          e.type === "peers" &&
          (e.peers as { name: string; speakerDelayMs: number }[]).every((p) =>
            Math.abs(p.speakerDelayMs - by[p.name].delayMs) < 0.01
          ),
        5000,
        "the peers' new delays",
      );
      // Written just after the report: give the file a moment.
      let kept: { speakerDelayMs: number }[] = [];
      for (let i = 0; i < 20 && kept.length === 0; i++, await sleep(100)) {
        const text = await Deno.readTextFile(`${peerCfg}/settings.json`).catch(() => "{}");
        kept = Object.values(JSON.parse(text).devices ?? {});
      }
      assertEquals(kept.length, 1, "the native peer remembers its device's settings");
      assertNear(kept[0].speakerDelayMs, by["Slow speaker"].delayMs, 0.01, "remembered delay");

      // After: resumed, every device is heard with the host.
      const resumed = await command(jam.host, "resume", (e) => e.type === "playing");
      await sleep(SETTLE_MS);
      const ended = await command(jam.host, "pause", (e) => e.type === "paused");

      // A muted device: calibration refuses, by name, and no delay changes.
      await pactl(jam.pulse, "set-sink-mute", "dev1", "1");
      const refused = await command(
        jam.host,
        "calibrate",
        (e) => e.type === "calibration" && e.state !== "running",
      );
      assertEquals(refused.state, "refused", JSON.stringify(refused));
      assertTrue(/did not hear Slow speaker/.test(`${refused.message}`), `${refused.message}`);
      await sleep(500);
      const peersNow = jam.host.events.filter((e) => e.type === "peers").at(-1)!
        .peers as { name: string; speakerDelayMs: number }[];
      for (const p of peersNow) {
        assertNear(p.speakerDelayMs, by[p.name].delayMs, 0.01, `${p.name} kept its delay`);
      }

      const recording = await rec.stop();
      const sec = (ms: number) => recording.sampleAt(ms) / recording.rateHz;
      // After: the native peer within 1 ms of the host. The page within 3: its output
      // timestamps wander by 1–3 ms in some runs (bench:sync calibrate: the page within 0.5 ms
      // in 8 rounds of 15), and a calibration takes the wander of its moment with it (one CI
      // run: 117.5 ms measured, 119.8 ms by the next calibration, after 1.3 ms).
      for (
        const [k, name, hidden, tol, afterTol] of [[1, "Slow speaker", 37, 10, 1], [
          2,
          "Slow phone",
          120,
          10,
          3,
        ]] as const
      ) {
        // Before (after the settling time: a young page's timing swings at first).
        const before = lagsBehind(
          recording,
          k,
          hidden,
          sec(started.atHostMs as number) + SETTLE_MS / 1000,
          sec(paused.atHostMs as number),
        ).map((w) => w.lagMs);
        assertTrue(before.length >= 6, `${name}: ${before.length} windows before`);
        const mb = percentile(before, 50);
        // After: at the microphone (the bus is what it hears), within afterTol of the host.
        const after = lagsBehind(
          recording,
          k,
          0,
          sec(resumed.atHostMs as number) + 1,
          sec(ended.atHostMs as number),
        ).map((w) => w.lagMs);
        assertTrue(after.length >= 12, `${name}: ${after.length} windows after`);
        const ma = percentile(after, 50);
        const p95 = percentile(after.map(Math.abs), 95);
        report.push(
          `${name}: before ${mb.toFixed(2)} ms late (hidden ${hidden}), after median ${
            ma.toFixed(2)
          } ms, p95 |lag| ${p95.toFixed(2)} ms over ${after.length} windows`,
        );
        assertTrue(
          Math.abs(mb - hidden) <= tol,
          `${name} before: ${before.map((l) => l.toFixed(1))}`,
        );
        assertTrue(
          Math.abs(ma) <= afterTol,
          `${name} after: ${after.map((l) => l.toFixed(2)).join(" ")}`,
        );
      }
      console.log(report.join("\n"));
      assertEquals(browser.consoleErrors(), []);
    } catch (e) {
      dump(jam.host);
      throw e;
    } finally {
      await browser.close();
      peer.kill();
      await peer.exited;
      await cleanUp(jam, rec);
    }
  },
});

/**
 * The app end to end, as a person uses it: the real app (`--no-window`) with the real engine
 * playing into a private PulseAudio, its UI in Debian's Chromium, a headless peer joining
 * through the link emulator, and a second app joining as a peer. Every step is a click or a
 * key in the UI; that host and peer really play in sync is read from the bus recording.
 */
import type { Page } from "playwright-core";
import { assertEquals, assertTrue } from "./assert.ts";
import { launchChromium } from "./harness/browser.ts";
import { rawPeer } from "./harness/jam.ts";
import { AppProcess } from "./harness/proc.ts";
import { recordBus, startPulse } from "./harness/pulse.ts";
import { makeNoiseMp3 } from "./harness/tracks.ts";
import { lagSeries, percentile } from "./harness/xcorr.ts";
import { freePort } from "./harness/ports.ts";

/** The page's document, as far as the functions evaluated in the page use it. */
declare const document: {
  querySelector(
    sel: string,
  ): { textContent: string | null; getAttribute(name: string): string | null } | null;
  querySelectorAll(sel: string): { length: number };
};

/** The page's drag-and-drop data, as far as the test builds one. */
declare const DataTransfer: new () => { items: { add(f: File): void } };

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The app without a window; resolves with its UI address once it prints it. */
async function startApp(
  tmp: string,
  name: string,
  env: Record<string, string>,
  audio = "pulse",
  extra: string[] = [],
) {
  const p = new AppProcess([
    ...["--no-window", "--audio", audio, "--bind", "127.0.0.1", "--no-discover", "--no-advertise"],
    ...["--config-dir", `${tmp}/${name}-cfg`, "--cache-dir", `${tmp}/${name}-cache`],
    ...["--log-file", `${tmp}/${name}.log`, ...extra],
  ], { env });
  const ui = await p.waitFor((e) => e.type === "ui", 30000, `${name}'s UI address`);
  return { p, url: ui.url as string };
}

/** Names of the queue's tracks, top to bottom, as the UI shows them. */
function queueTitles(page: Page): Promise<string[]> {
  return page.locator(".queue-list .track-title").allInnerTexts();
}

Deno.test({
  name: "a person hosts from the app: creates a jam, adds songs, a peer joins, Play waits for " +
    "it, play/pause/seek/skip/reorder/requests by clicking, and host and peer are heard in sync",
  ...opts,
  async fn() {
    const pulse = await startPulse(2);
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-app-" });
    const rec = recordBus(pulse);
    const procs: AppProcess[] = [];
    const browser = await launchChromium();
    try {
      const names = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"];
      const files = names.map((n) => `${tmp}/${n}.mp3`);
      await Promise.all(files.map((f, i) => makeNoiseMp3(f, i === 0 ? 14 : 5)));
      // The rig's microphone (every device's sound, mixed to mono) is the host's.
      const host = await startApp(tmp, "host", pulse.env(0), "pulse", ["--mic", pulse.micSource]);
      procs.push(host.p);
      const page = await browser.page(host.url);

      // Home → Create Jam.
      await page.getByRole("button", { name: "Create Jam" }).click();
      const port = freePort();
      await page.getByLabel("Session name").fill("UI Jam");
      await page.getByLabel("Your name").fill("Alex");
      await page.getByLabel("Port").fill(String(port));
      await page.getByRole("button", { name: "Create Jam" }).click();
      await page.getByRole("heading", { name: "UI Jam" }).waitFor({ timeout: 15000 });

      // Add Song: the file picker, three files at once.
      const [chooser] = await Promise.all([
        page.waitForEvent("filechooser"),
        page.getByRole("button", { name: "Add Song" }).click(),
      ]);
      await chooser.setFiles(files.slice(0, 3));
      await page.waitForFunction(
        () => document.querySelectorAll(".queue-list .track").length === 3,
        null,
        { timeout: 30000 },
      );
      assertEquals(await queueTitles(page), ["Alpha", "Bravo", "Charlie"]);
      assertTrue(await page.getByRole("button", { name: "Play" }).isEnabled(), "no peers: ready");

      // A headless peer joins through the link emulator, which cuts its first two downloads,
      // so for about a second it does not have the track: Play must wait for it. The emulator
      // is a process of its own: in this busy test process its clock pings would wait behind
      // the browser's traffic (measured: host↔peer p95 up to 2.6 ms that way).
      const relayPort = freePort();
      const relay = new AppProcess([
        ...["--listen", `127.0.0.1:${relayPort}`, "--to", `127.0.0.1:${port}`],
        ...["--cut-after-bytes", "60000", "--cuts", "2"],
      ], { script: new URL("../net/link_relay.ts", import.meta.url).pathname });
      procs.push(relay);
      await relay.waitFor((e) => e.type === "relay", 15000, "the link emulator");
      const peer = new AppProcess([
        ...["join", "--headless", `127.0.0.1:${relayPort}`, "--as", "Sam", "--audio", "pulse"],
        ...["--cache-dir", `${tmp}/sam-cache`, "--config-dir", `${tmp}/sam-cfg`],
        ...["--log-file", `${tmp}/sam.log`],
      ], { env: pulse.env(1) });
      procs.push(peer);
      const sam = page.locator(".peer", { hasText: "Sam" });
      await sam.waitFor({ timeout: 15000 });
      await page.waitForFunction(
        () => document.querySelector(".peer")?.textContent?.includes("now: ready") !== true,
      );
      assertTrue(
        await page.getByRole("button", { name: "Play" }).isDisabled(),
        "Play is disabled while Sam lacks the track",
      );
      // Its clock word: "in sync" once its offset noise is under 0.5 ms, "locking" before. Through
      // the user-space link emulator the noise sits near that line (0.38–0.44 ms measured), so
      // either word shows the peer's clock is reported; "no clock" would not.
      await sam.locator(".status", { hasText: /^(in sync|locking)$/ }).waitFor({ timeout: 15000 });
      await sam.getByText("now: ready").waitFor({ timeout: 20000 });
      const play = page.getByRole("button", { name: "Play" });
      await play.waitFor({ state: "visible" });
      assertTrue(await play.isEnabled(), "Play is enabled once Sam is ready");

      // Play: measured from the click to the first sound on the host's channel.
      // Timed in the page at the click itself (Playwright's own checks before a click take
      // tens of ms and are not what a person waits for).
      const clickMs = await play.evaluate((b) => {
        const t = performance.timeOrigin + performance.now();
        (b as unknown as { click(): void }).click();
        return t;
      });
      await page.getByRole("button", { name: "Pause" }).waitFor();
      await peer.waitFor((e) => e.type === "started", 10000, "the peer's start");
      await new Promise((r) => setTimeout(r, 4000));
      // The sync panel has a line per device, with an estimate in words.
      const health = page.getByRole("region", { name: "Sync health" });
      await health.locator(".health-row", { hasText: "Sam" })
        .getByText(/±\d+\.\d\d ms · (in sync|close|off)/).waitFor();
      await health.locator(".health-row", { hasText: "Alex (host)" }).waitFor();

      // Pause, then seek by clicking the middle of the bar: the position moves there.
      await page.getByRole("button", { name: "Pause" }).click();
      await peer.waitFor((e) => e.type === "paused", 5000, "the peer's pause");
      const bar = page.getByRole("slider", { name: "Position" });
      const box = (await bar.boundingBox())!;
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      await page.waitForFunction(
        () => {
          const v = Number(
            document.querySelector("[aria-label=Position]")?.getAttribute("aria-valuenow"),
          );
          return v >= 6 && v <= 8;
        },
        null,
        { timeout: 5000 },
      );
      await page.getByRole("button", { name: "Play" }).click();
      const resumed = await peer.waitFor(
        (e) => e.type === "playing" && (e.positionSec as number) > 5,
        5000,
        "playing from the seek position",
      );
      assertTrue(Math.abs((resumed.positionSec as number) - 7) < 1, JSON.stringify(resumed));
      await new Promise((r) => setTimeout(r, 2000));

      // Skip (keyboard N does the same; here the button).
      await page.getByRole("button", { name: "Skip" }).click();
      await peer.waitFor(
        (e) => e.type === "playing" && e.title === "Bravo",
        10000,
        "Bravo after skip",
      );
      await page.locator(".track.playing", { hasText: "Bravo" }).waitFor();
      const recording = await rec.stop();

      // Calibrate by clicking, paused (a quiet room): the microphone hears the host's chirp,
      // then Sam's; the table shows both and what was set. After the sync measurement above,
      // which is about the clocks, not about a delay set while Sam's clock was young.
      const pausedBefore = peer.count((e) => e.type === "paused");
      await page.getByRole("button", { name: "Pause" }).click();
      await peer.waitFor(
        () => peer.count((e) => e.type === "paused") > pausedBefore,
        5000,
        "paused",
      );
      await page.getByRole("button", { name: "Calibrate" }).click();
      const calibration = page.getByRole("region", { name: "Calibration" });
      await calibration.getByText(/meet at the microphone|met at the microphone/)
        .waitFor({ timeout: 20000 });
      // One row per device, host first. Both play into one sound server: what the microphone
      // tells apart is the peer's clock error through the link emulator (a fraction of a ms).
      const shots = Deno.env.get("PHASELOCK_SCREENSHOT_DIR");
      if (shots) await page.screenshot({ path: `${shots}/calibration-real.png`, fullPage: true });
      const rows = await calibration.locator("tbody tr").allInnerTexts();
      assertEquals(rows.length, 2, rows.join(" | "));
      assertTrue(/^Alex/.test(rows[0]) && /^Sam/.test(rows[1]), rows.join(" | "));
      for (const r of rows) {
        const latency = Number(/(-?\d+\.\d) ms/.exec(r)?.[1]);
        assertTrue(latency >= 0 && latency < 3, `latency in "${r}"`);
      }
      const playsBefore = peer.count((e) => e.type === "playing");
      await page.getByRole("button", { name: "Play" }).click();
      await peer.waitFor(
        () => peer.count((e) => e.type === "playing") > playsBefore,
        5000,
        "playing again",
      );

      // The keyboard: "?" lists the shortcuts; Space, →, N and M do what it says.
      await page.keyboard.press("?");
      await page.getByRole("dialog", { name: "Keyboard shortcuts" }).waitFor();
      await page.keyboard.press("Escape");
      await page.getByRole("dialog").waitFor({ state: "detached" });
      // Shortcuts act when no control has the focus (a focused button keeps Space for itself).
      await page.locator(".now-title").click();
      const pausesBefore = peer.count((e) => e.type === "paused");
      await page.keyboard.press("Space");
      await peer.waitFor(
        () => peer.count((e) => e.type === "paused") > pausesBefore,
        5000,
        "Space pauses",
      );
      const at = async () => Number(await bar.getAttribute("aria-valuenow"));
      const before = await at();
      await page.keyboard.press("ArrowRight");
      await page.waitForFunction(
        (b) =>
          Number(document.querySelector("[aria-label=Position]")?.getAttribute("aria-valuenow")) >=
            b + 4,
        before,
        { timeout: 5000 },
      );
      await page.keyboard.press("Space");
      const again = await peer.waitFor(
        (e) => e.type === "playing" && e.title === "Bravo" && (e.positionSec as number) > 3,
        5000,
        "Space plays from the new position",
      );
      assertTrue(
        Math.abs((again.positionSec as number) - (before + 5)) < 1.5,
        JSON.stringify(again),
      );
      await page.keyboard.press("n");
      await peer.waitFor((e) => e.type === "playing" && e.title === "Charlie", 10000, "N skips");
      await page.keyboard.press("m");
      await page.getByRole("button", { name: "Mute", pressed: true }).waitFor();

      // Reorder by dragging Charlie's handle above Alpha.
      const handle = page.getByRole("button", { name: "Drag to reorder Charlie" });
      const from = (await handle.boundingBox())!;
      const to = (await page.locator(".queue-list .track").first().boundingBox())!;
      await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
      await page.mouse.down();
      for (let i = 1; i <= 8; i++) {
        await page.mouse.move(from.x + from.width / 2, from.y + (to.y + 4 - from.y) * (i / 8));
      }
      await page.mouse.up();
      await page.waitForFunction(
        () => document.querySelector(".queue-list .track-title")?.textContent === "Charlie",
        null,
        { timeout: 5000 },
      );
      assertEquals(await queueTitles(page), ["Charlie", "Alpha", "Bravo"]);
      // …and with the keyboard: Alt+↓ on the focused first track.
      await page.locator(".queue-list .track").first().focus();
      await page.keyboard.press("Alt+ArrowDown");
      await page.waitForFunction(
        () => document.querySelector(".queue-list .track-title")?.textContent === "Alpha",
        null,
        { timeout: 5000 },
      );
      // Remove a track that is not playing; then drop an MP3 onto the window.
      await page.getByRole("button", { name: "Remove Bravo" }).click();
      await page.waitForFunction(() =>
        document.querySelectorAll(".queue-list .track").length === 2
      );
      const dropped = await page.evaluateHandle((bytes) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], "Foxtrot.mp3", { type: "audio/mpeg" }));
        return dt;
      }, Array.from(await Deno.readFile(files[5])));
      await page.dispatchEvent(".app", "dragover", { dataTransfer: dropped });
      await page.dispatchEvent(".app", "drop", { dataTransfer: dropped });
      await page.locator(".queue-list .track-title", { hasText: "Foxtrot" }).waitFor();
      assertEquals(await queueTitles(page), ["Alpha", "Charlie", "Foxtrot"]);

      // Requests from the peer: one accepted, one rejected, from the drawer.
      await peer.send(`request ${files[3]}`);
      await peer.waitFor(
        (e) => e.type === "request" && e.state === "waiting",
        10000,
        "Delta filed",
      );
      await page.getByRole("button", { name: "Accept Delta" }).click({ timeout: 10000 });
      await peer.waitFor((e) => e.type === "request" && e.state === "queued", 15000, "queued");
      await page.locator(".queue-list .track-title", { hasText: "Delta" }).waitFor();
      await peer.send(`request ${files[4]}`);
      await page.getByRole("button", { name: "Reject Echo" }).click({ timeout: 10000 });
      await peer.waitFor((e) => e.type === "request" && e.state === "rejected", 10000, "rejected");
      await page.waitForFunction(() => document.querySelectorAll(".drawer .request").length === 0);

      // A second app joins as a peer by address, then the host ends the jam.
      const other = await startApp(tmp, "other", pulse.env(1), "null");
      procs.push(other.p);
      const page2 = await browser.page(other.url);
      await page2.getByRole("button", { name: "Join Jam" }).click();
      await page2.getByLabel("Your name").fill("Kim");
      await page2.getByLabel("Host address").fill(`127.0.0.1:${port}`);
      await page2.getByRole("button", { name: "Join", exact: true }).click();
      await page2.getByRole("heading", { name: "UI Jam" }).waitFor({ timeout: 15000 });
      await page2.getByText("Hosted by Alex").waitFor();
      await page2.locator(".queue-list .track-title", { hasText: "Delta" }).waitFor();
      await page.locator(".peer", { hasText: "Kim" }).waitFor({ timeout: 10000 });

      // Kim leaves; the jam fills up (four more peers); Kim is turned away with the host's
      // sentence, back Home; once there is room again Kim gets in.
      await page2.getByRole("button", { name: "Leave" }).click();
      await page2.getByRole("button", { name: "Join Jam" }).waitFor();
      const fillers = await Promise.all([1, 2, 3, 4].map((i) => rawPeer(port, `Filler ${i}`)));
      await page2.getByRole("button", { name: "Join Jam" }).click();
      await page2.getByRole("button", { name: "Join", exact: true }).click();
      await page2.getByText(/refused to let you join: "UI Jam" is full/).waitFor({
        timeout: 10000,
      });
      for (const f of fillers) f.ws.close();
      await page.waitForFunction(() => document.querySelectorAll(".peers .peer").length === 1);
      // The Join form stays open under the sentence: trying again is one click.
      await page2.getByRole("button", { name: "Join", exact: true }).click();
      await page2.getByRole("heading", { name: "UI Jam" }).waitFor({ timeout: 15000 });
      await page.locator(".peer", { hasText: "Kim" }).waitFor({ timeout: 10000 });

      await page.getByRole("button", { name: "End Jam" }).click();
      await page.getByRole("button", { name: "Create Jam" }).waitFor({ timeout: 10000 });
      await page2.getByText("Host disconnected — session ended").waitFor({ timeout: 10000 });
      await page2.getByRole("button", { name: "Join Jam" }).waitFor();
      assertEquals((await peer.exited).code, 3, "the headless peer ends: host gone");
      // Through the end of the queue and every transport change, the peer never had to jump
      // (a track that ended used to make players resync every block, tens of times a second).
      const resyncs = peer.count((e) =>
        e.type === "notice" && /Resynchronised/.test(`${e.message}`)
      );
      assertTrue(resyncs <= 3, `${resyncs} resyncs on the peer`);
      assertEquals(browser.consoleErrors(), []);

      // Heard: host (channel 0) and peer (channel 1) in sync while playing.
      const [a, b] = recording.channels;
      // Windows every 0.25 s: with a dozen, the 95th percentile would be the single worst
      // window, and one block lost to a starved process would decide the test.
      const series = lagSeries(a, b, { maxLagMs: 40, hopSec: 0.25 }).points;
      const lags = series.map((p) => p.lagMs);
      const shown = series.map((p) => `${p.atSec.toFixed(2)}s:${p.lagMs.toFixed(3)}`).join(" ");
      if (Deno.env.get("PHASELOCK_SHOW_LAGS")) console.log(shown);
      assertTrue(lags.length >= 16, `too few windows with sound on both devices: ${lags.length}`);
      const p95 = percentile(lags.map(Math.abs), 95);
      const median = percentile(lags.map(Math.abs), 50);
      const within = lags.filter((l) => Math.abs(l) <= 2).length / lags.length;
      if (p95 > 2) console.error(`host↔peer lag by window: ${shown}`);
      const start = recording.sampleAt(clickMs);
      let first = Math.max(0, Math.round(start));
      while (first < a.length && Math.abs(a[first]) < 0.01) first++;
      const toSoundMs = recording.realMsOf(first) - clickMs;
      console.log(
        `click Play → sound ${toSoundMs.toFixed(0)} ms (±${recording.chunkMs.toFixed(0)} ms); ` +
          `host↔peer |lag| p95 ${p95.toFixed(3)} ms, median ${median.toFixed(3)} ms, ` +
          `${(100 * within).toFixed(0)} % of ${lags.length} windows within 2 ms`,
      );
      // Held by the median and by how many windows are within 2 ms, not by the p95: this test
      // shares two cores with a browser, and on a busy machine a starved block or two put the
      // p95 at 6-10 ms in runs whose other windows were within 0.5 ms. A peer on a wrong clock
      // or at a wrong place fails both. (Sync accuracy is measured in bench:sync and in the
      // namespace test, with nothing else running.)
      assertTrue(median <= 1, `host and peer ${median.toFixed(2)} ms apart (median)`);
      assertTrue(
        within >= 0.85,
        `only ${(100 * within).toFixed(0)} % of the windows had host and peer within 2 ms`,
      );
      assertTrue(toSoundMs > 0 && toSoundMs < 1000, `click → sound ${toSoundMs} ms`);

      // Quitting the app ends cleanly.
      host.p.kill("SIGTERM");
      assertEquals((await host.p.exited).code, 0);
    } catch (e) {
      const quiet = new Set(["peers", "transfer", "health"]);
      for (const p of procs) {
        const told = p.events.filter((e) => !quiet.has(e.type)).slice(-25);
        console.error(JSON.stringify(told).slice(0, 6000), p.stderr.slice(-1500));
      }
      throw e;
    } finally {
      await browser.close();
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      await rec.stop().catch(() => {});
      await pulse.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

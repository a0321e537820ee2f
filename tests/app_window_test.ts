/**
 * The real window: `main.ts` with its native window under a private Xvfb. The window's pixels
 * are read from the X screen; the app is driven through a second view of the same control
 * server (the printed UI address in headless Chromium), which the window follows, since every
 * UI connected to the control server gets the same events. Saves home.png and
 * host-playing.png in $PHASELOCK_SCREENSHOT_DIR (default: the temp folder's
 * phaselock-screenshots); `PHASELOCK_SCREENSHOT_DIR=docs/screenshots` refreshes the README's.
 *
 * The window is 1280x800 at the screen's origin and the screen is 1280x800, so a screenshot
 * of the screen is a screenshot of the window.
 */
import { assertTrue } from "./assert.ts";
import { launchChromium } from "./harness/browser.ts";
import { alive, AppProcess, descendants, exitWithin } from "./harness/proc.ts";
import {
  holdDisplay,
  readRgb,
  requestCloseLikeUser,
  screenshot,
  startXvfb,
} from "./harness/xvfb.ts";
import { freePort } from "./harness/ports.ts";

/** The page's document, as far as the functions evaluated in the page use it. */
declare const document: { querySelectorAll(sel: string): { length: number } };

const ROOT = new URL("../", import.meta.url).pathname;
/** Where the screenshots are kept; a test run does not rewrite the documented ones. */
const SHOTS = Deno.env.get("PHASELOCK_SCREENSHOT_DIR") ??
  `${Deno.env.get("TMPDIR") ?? "/tmp"}/phaselock-screenshots`;
const BG = "#121212";
const ACCENT = "#1DB954";
const LAUNCH_TO_HOME_BOUND_MS = 15_000;
const opts = { sanitizeOps: false, sanitizeResources: false };
const realNow = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ShotStats {
  /** Shares (0..1) of pixels within 6 of the background and of the accent colour. */
  bg: number;
  accent: number;
  colors: number;
  rgb: Uint8Array;
}

/** One decode of the PNG: background and accent shares and the number of distinct colours. */
async function stats(png: string): Promise<ShotStats> {
  const { rgb } = await readRgb(png);
  const near = (i: number, c: number[]) =>
    Math.abs(rgb[i] - c[0]) <= 6 && Math.abs(rgb[i + 1] - c[1]) <= 6 &&
    Math.abs(rgb[i + 2] - c[2]) <= 6;
  const hex = (h: string) => [1, 3, 5].map((o) => parseInt(h.slice(o, o + 2), 16));
  const bgC = hex(BG), acC = hex(ACCENT);
  let bg = 0, accent = 0;
  const seen = new Set<number>();
  for (let i = 0; i < rgb.length; i += 3) {
    if (near(i, bgC)) bg++;
    else if (near(i, acC)) accent++;
    seen.add((rgb[i] << 16) | (rgb[i + 1] << 8) | rgb[i + 2]);
  }
  const n = rgb.length / 3 || 1;
  return { bg: bg / n, accent: accent / n, colors: seen.size, rgb };
}

/** Fraction of pixels whose colour differs by more than 32 in some channel. */
function changedShare(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return 1;
  let changed = 0;
  for (let i = 0; i < a.length; i += 3) {
    if (
      Math.abs(a[i] - b[i]) > 32 || Math.abs(a[i + 1] - b[i + 1]) > 32 ||
      Math.abs(a[i + 2] - b[i + 2]) > 32
    ) changed++;
  }
  return changed / (a.length / 3);
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const describe = (s: ShotStats) =>
  `${BG} ${pct(s.bg)}, ${ACCENT} ${pct(s.accent)}, ${s.colors} colours`;

Deno.test({
  name: "the real window: shows Home on launch, follows a jam that plays, and closing it " +
    "like a user ends the app with code 0",
  ...opts,
  async fn() {
    const x = await startXvfb({ screen: "1280x800x24" });
    const hold = holdDisplay(x.display);
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-appwin-" });
    await Deno.mkdir(SHOTS, { recursive: true });
    let app: AppProcess | null = null;
    let browser: Awaited<ReturnType<typeof launchChromium>> | null = null;
    let helpers: number[] = [];
    try {
      app = new AppProcess([
        ...[
          "--audio",
          "null",
          "--no-discover",
          "--no-advertise",
          "--bind",
          "127.0.0.1",
          "--print-url",
        ],
        ...["--config-dir", `${tmp}/cfg`, "--cache-dir", `${tmp}/cache`],
        ...["--log-file", `${tmp}/app.log`],
      ], { env: { DISPLAY: x.display, GDK_BACKEND: "x11" } });
      const ui = await app.waitFor((e) => e.type === "ui", 30_000, "the UI address");
      const url = ui.url as string;
      assertTrue(/^http:\/\/127\.0\.0\.1:\d+\/#token=/.test(url), `ui url: ${url}`);

      // Launch → Home on screen: poll screenshots until the Home screen's colours are there.
      const shot = `${tmp}/shot.png`;
      let home: ShotStats | null = null, last: ShotStats | null = null, homeMs = NaN;
      let polls = 0, exited: Deno.CommandStatus | null = null;
      app.exited.then((s) => exited = s);
      while (realNow() - app.spawnedMs < LAUNCH_TO_HOME_BOUND_MS + 5_000 && !exited) {
        await screenshot(x.display, shot);
        const at = realNow();
        polls++;
        last = await stats(shot);
        if (last.bg > 0.5 && last.accent > 0.005 && last.colors > 50) {
          home = last;
          homeMs = at - app.spawnedMs;
          await Deno.copyFile(shot, `${SHOTS}/home.png`);
          break;
        }
        await sleep(50);
      }
      console.log(
        `launch → Home on screen ≤ ${homeMs.toFixed(0)} ms (${polls} screenshots; ` +
          `UI address printed after ${(ui.rxMs! - app.spawnedMs).toFixed(0)} ms); ` +
          (home ? describe(home) : `last screenshot: ${last ? describe(last) : "none"}`),
      );
      assertTrue(
        home,
        `Home never showed in the window (${last ? describe(last) : "no shot"})${
          exited
            ? `: the app exited with ${(exited as Deno.CommandStatus).code}; stderr: ${
              app.stderr.slice(-1500)
            }`
            : ""
        }`,
      );
      assertTrue(
        homeMs < LAUNCH_TO_HOME_BOUND_MS,
        `launch → Home took ${homeMs.toFixed(0)} ms (bound ${LAUNCH_TO_HOME_BOUND_MS} ms)`,
      );
      helpers = descendants(app.child.pid);

      // Drive the same app through a second view; the window follows.
      browser = await launchChromium();
      const page = await browser.page(url);
      await page.getByRole("button", { name: "Create Jam" }).click();
      await page.getByLabel("Session name").fill("Window Jam");
      await page.getByLabel("Your name").fill("Alex");
      await page.getByLabel("Port").fill(String(freePort()));
      await page.getByRole("button", { name: "Create Jam" }).click();
      await page.getByRole("heading", { name: "Window Jam" }).waitFor({ timeout: 15_000 });
      await page.getByRole("button", { name: "Add demo track" }).click();
      await page.waitForFunction(
        () => document.querySelectorAll(".queue-list .track").length === 1,
        null,
        { timeout: 20_000 },
      );
      const play = page.getByRole("button", { name: "Play" });
      await play.waitFor({ timeout: 10_000 });
      await page.waitForFunction(
        () => document.querySelectorAll("button[aria-label=Play]:not([disabled])").length > 0,
        null,
        { timeout: 10_000 },
      );
      await play.click();
      await page.getByRole("button", { name: "Pause" }).waitFor({ timeout: 10_000 });
      await sleep(2000);

      // The window now shows the host screen, playing.
      let playing: ShotStats | null = null, diff = 0;
      for (const deadline = performance.now() + 10_000; performance.now() < deadline;) {
        await screenshot(x.display, shot);
        playing = await stats(shot);
        diff = changedShare(home.rgb, playing.rgb);
        if (diff > 0.02 && playing.bg > 0.1 && playing.accent > 0.001) break;
        await sleep(250);
      }
      const looksRight = playing!.colors > 100 && playing!.bg > 0.1 && playing!.accent > 0.001 &&
        diff > 0.02;
      // A failed look is kept apart so that a kept screenshot is always a good one.
      const kept = looksRight
        ? `${SHOTS}/host-playing.png`
        : `${Deno.env.get("TMPDIR") ?? "/tmp"}/phaselock-host-playing-failed.png`;
      await Deno.copyFile(shot, kept);
      if (!looksRight) console.log(`the window as it was: ${kept}`);
      console.log(
        `host playing: ${describe(playing!)}; ${pct(diff)} of the pixels differ from Home`,
      );
      assertTrue(playing!.colors > 100, `the window looks blank: ${describe(playing!)}`);
      assertTrue(playing!.bg > 0.1, `little of the app's background: ${describe(playing!)}`);
      assertTrue(playing!.accent > 0.001, `no accent colour on screen: ${describe(playing!)}`);
      assertTrue(diff > 0.02, `the window still looks like Home (${pct(diff)} of pixels changed)`);
      const errors = browser.consoleErrors();
      if (errors.length) console.log(`console errors in the second view: ${errors.join(" | ")}`);

      // Closing the window like a user ends the app, cleanly.
      helpers = [...new Set([...helpers, ...descendants(app.child.pid)])];
      const closedAt = realNow();
      assertTrue(requestCloseLikeUser(x.display, "PhaseLock"), 'no window titled "PhaseLock"');
      const status = await exitWithin(app, 10_000);
      assertTrue(
        status,
        `the app still runs 10 s after its window was closed; stderr: ${app.stderr.slice(-1500)}`,
      );
      console.log(
        `window closed → app exited in ${
          (realNow() - closedAt).toFixed(0)
        } ms with code ${status.code}`,
      );
      assertTrue(
        status.success,
        `the app exited with ${status.code} (signal ${status.signal}); stderr: ${
          app.stderr.slice(-1500)
        }`,
      );
    } finally {
      await browser?.close();
      if (app) {
        app.kill("SIGTERM");
        if (!(await exitWithin(app, 5000))) {
          app.kill("SIGKILL");
          await app.exited;
        }
        // WebKit's helpers end with the app; any left over would be ours to stop.
        const deadline = performance.now() + 3000;
        while (helpers.some(alive) && performance.now() < deadline) await sleep(100);
        for (const pid of helpers.filter(alive)) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
      hold.close();
      await x.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "with no display the app exits non-zero with one sentence that names --no-window",
  ...opts,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-nodisplay-" });
    try {
      const env = Deno.env.toObject();
      for (const k of ["DISPLAY", "WAYLAND_DISPLAY", "GDK_BACKEND"]) delete env[k];
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          ...["run", "-A", `${ROOT}main.ts`, "--audio", "null", "--no-discover", "--no-advertise"],
          ...["--bind", "127.0.0.1", "--config-dir", `${tmp}/cfg`, "--cache-dir", `${tmp}/cache`],
          ...["--log-file", `${tmp}/app.log`],
        ],
        cwd: ROOT,
        clearEnv: true,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 30_000);
      const out = await child.output();
      clearTimeout(timer);
      const stderr = new TextDecoder().decode(out.stderr).trim();
      const stdout = new TextDecoder().decode(out.stdout).trim();
      console.log(`exit ${out.code}; stderr: ${stderr}`);
      assertTrue(
        !out.success && out.signal === null,
        `exit code ${out.code}, signal ${out.signal}`,
      );
      assertTrue(stderr.split("\n").length === 1, `stderr is not one line:\n${stderr}`);
      assertTrue(stderr.includes("--no-window"), `stderr does not mention --no-window: ${stderr}`);
      assertTrue(!/"type":"ui"/.test(stdout), `a UI address was printed anyway: ${stdout}`);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

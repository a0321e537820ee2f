/**
 * Debian's Firefox ESR driven by puppeteer-core over WebDriver BiDi, for browser-peer tests.
 * Like tests/harness/browser.ts for Chromium: headless, audio allowed to start without a
 * gesture, and the browser gets the environment of a private PulseAudio
 * (tests/harness/pulse.ts), so WebAudio lands on the test's bus (design §6).
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { descendants } from "./proc.ts";
import { endProcesses } from "./webkit.ts";

/** Where Debian's `firefox-esr` package puts its launcher; tests/setup.ts installs it. */
export const FIREFOX_PATH = "/usr/bin/firefox-esr";

/**
 * Preferences for a test browser. Firefox blocks audible autoplay by default (an
 * AudioContext made without a gesture stays `suspended`); these allow it, like Chromium's
 * `--autoplay-policy=no-user-gesture-required`. A real click (BiDi input actions, as
 * `page.click` sends) unlocks audio without them too.
 */
export const FIREFOX_TEST_PREFS: Record<string, unknown> = {
  "media.autoplay.default": 0,
  "media.autoplay.blocking_policy": 0,
  // Play through PulseAudio or fail: no quiet fallback to another backend.
  "media.cubeb.backend": "pulse",
};

export interface FirefoxOptions {
  /**
   * The private PulseAudio to play into: `env` as from `PrivatePulse.env(k)` (it carries
   * `PULSE_SERVER` and `XDG_RUNTIME_DIR`), and `sink` to override its `PULSE_SINK`.
   */
  pulse?: { env: Record<string, string>; sink?: string };
  /** Default true. */
  headless?: boolean;
  /** More preferences, over `FIREFOX_TEST_PREFS`. */
  prefs?: Record<string, unknown>;
  /** Extra Firefox command-line arguments. */
  args?: string[];
}

export interface LaunchedFirefox {
  browser: Browser;
  /** Pid of the main Firefox process (its content processes are below it). */
  pid: number;
  /** A new page (its own browser context) that has loaded `url`. */
  page(url: string): Promise<Page>;
  /**
   * Every console error and uncaught page exception so far, from all pages, as text
   * (`"console: …"` or `"pageerror: …"`), so a test can assert that none happened.
   */
  consoleErrors(): string[];
  /** Closes the browser and makes sure every one of its processes has ended. */
  close(): Promise<void>;
}

/** Only these are taken from the pulse environment: the rest (its `HOME`) is the test's. */
const PULSE_VARS = ["PULSE_SERVER", "PULSE_SINK", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR"];

/**
 * Launches `/usr/bin/firefox-esr`. Throws with a sentence when it is not installed; the
 * browser is never downloaded.
 */
export async function launchFirefox(opts: FirefoxOptions = {}): Promise<LaunchedFirefox> {
  try {
    await Deno.stat(FIREFOX_PATH);
  } catch {
    throw new Error(
      `Firefox ESR is not installed (${FIREFOX_PATH} is missing): run "deno run -A tests/setup.ts" as root, or "apt-get install firefox-esr".`,
    );
  }
  // Puppeteer's `env` replaces the browser's environment instead of adding to it.
  const env: Record<string, string> = Deno.env.toObject();
  if (opts.pulse) {
    for (const k of PULSE_VARS) {
      if (opts.pulse.env[k] !== undefined) env[k] = opts.pulse.env[k];
    }
    if (opts.pulse.sink) env.PULSE_SINK = opts.pulse.sink;
  }
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX_PATH,
    headless: opts.headless ?? true,
    extraPrefsFirefox: { ...FIREFOX_TEST_PREFS, ...opts.prefs },
    args: opts.args ?? [],
    env,
    timeout: 60_000,
    // Puppeteer starts Firefox in its own process group, so an interrupted test (Ctrl+C, or
    // `timeout`'s SIGTERM) would leave it running: on those signals puppeteer kills the group.
    handleSIGINT: true,
    handleSIGTERM: true,
    handleSIGHUP: true,
  }).catch((e: Error) => {
    throw new Error(`Firefox (${FIREFOX_PATH}) failed to start: ${e.message.slice(0, 800)}`);
  });
  const pid = browser.process()?.pid;
  if (!pid) {
    await browser.close().catch(() => {});
    throw new Error("Firefox started but puppeteer reports no browser process");
  }
  const errors: string[] = [];
  let closed = false;
  return {
    browser,
    pid,
    async page(url: string): Promise<Page> {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      page.on("console", (msg) => {
        if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
      });
      page.on("pageerror", (err) => errors.push(`pageerror: ${(err as Error).message ?? err}`));
      await page.goto(url, { timeout: 60_000 });
      return page;
    },
    consoleErrors: () => [...errors],
    async close() {
      if (closed) return;
      closed = true;
      const tree = [pid, ...descendants(pid)];
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        browser.close().catch(() => {}),
        new Promise((r) => timer = setTimeout(r, 15_000)),
      ]);
      clearTimeout(timer);
      await endProcesses(tree, 3000);
    },
  };
}

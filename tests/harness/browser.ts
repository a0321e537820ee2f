/**
 * Debian's Chromium driven by Playwright, for browser-peer and web-UI tests. Audio is left on
 * (Playwright mutes by default) and allowed to start without a gesture, and the browser gets
 * the environment of a private PulseAudio (tests/harness/pulse.ts), so WebAudio lands on the
 * test's bus and the recorder measures a browser like any native device (design §6).
 */
import { type Browser, chromium, type Page } from "playwright-core";

/** Where Debian's `chromium` package puts its launcher; tests/setup.ts installs it. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

export interface ChromiumOptions {
  /**
   * The private PulseAudio to play into: `env` as from `PrivatePulse.env(k)` (it carries
   * `PULSE_SERVER` and `XDG_RUNTIME_DIR`), and `sink` to override its `PULSE_SINK`.
   */
  pulse?: { env: Record<string, string>; sink?: string };
  /** Default true; headed needs an X display (`DISPLAY`, e.g. under Xvfb). */
  headless?: boolean;
  /** Extra Chromium switches. */
  args?: string[];
}

export interface LaunchedChromium {
  browser: Browser;
  /** A new page (its own context) that has loaded `url`. */
  page(url: string): Promise<Page>;
  /**
   * Every console error and uncaught page exception so far, from all pages, as text
   * (`"console: …"` or `"pageerror: …"`), so a test can assert that none happened.
   */
  consoleErrors(): string[];
  close(): Promise<void>;
}

/** Only these are taken from the pulse environment: the rest (its `HOME`) is the test's. */
const PULSE_VARS = ["PULSE_SERVER", "PULSE_SINK", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR"];

/**
 * Launches `/usr/bin/chromium`. Throws with a sentence when it is not installed; the browser
 * is never downloaded (Playwright's own builds are not used).
 */
export async function launchChromium(opts: ChromiumOptions = {}): Promise<LaunchedChromium> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `Chromium is not installed (${CHROMIUM_PATH} is missing): run "deno run -A tests/setup.ts" as root, or "apt-get install chromium".`,
    );
  }
  // Playwright's `env` replaces the browser's environment instead of adding to it.
  const env: Record<string, string> = Deno.env.toObject();
  if (opts.pulse) {
    for (const k of PULSE_VARS) {
      if (opts.pulse.env[k] !== undefined) env[k] = opts.pulse.env[k];
    }
    if (opts.pulse.sink) env.PULSE_SINK = opts.pulse.sink;
  }
  const args = [
    "--autoplay-policy=no-user-gesture-required",
    // Tests run as root in CI, where Chromium refuses to start with its sandbox.
    "--no-sandbox",
    // No first-run dialogs, keyring prompts or update checks on a fresh machine.
    "--no-first-run",
    "--password-store=basic",
    ...(opts.args ?? []),
  ];
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: opts.headless ?? true,
    // Playwright passes --mute-audio by default: the browser would play into nothing.
    ignoreDefaultArgs: ["--mute-audio"],
    args,
    env,
    timeout: 60_000,
  }).catch((e: Error) => {
    throw new Error(`Chromium (${CHROMIUM_PATH}) failed to start: ${e.message.slice(0, 800)}`);
  });
  const errors: string[] = [];
  return {
    browser,
    async page(url: string): Promise<Page> {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on("console", (msg) => {
        if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
      });
      page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
      await page.goto(url);
      return page;
    },
    consoleErrors: () => [...errors],
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

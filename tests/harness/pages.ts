/**
 * One small page interface over the three browser engines the tests drive, so a browser-peer
 * test is written once and run on each: Chromium (Playwright, tests/harness/browser.ts),
 * Firefox ESR (puppeteer over WebDriver BiDi, tests/harness/firefox.ts) and WebKitGTK
 * (WebKitWebDriver, tests/harness/webkit.ts).
 *
 * Semantics are the same on every engine:
 * - `evaluate(fn, arg)` serialises `fn` with its source text and calls it in the page with a
 *   JSON copy of `arg`; a string is an expression. Promises are awaited; the result comes back
 *   as JSON (`undefined` may arrive as `null`).
 * - `click` and `fill` send real, trusted input (a user gesture for autoplay rules).
 * - `{ text }` finds the innermost element whose whitespace-normalised text is exactly `text`.
 */
import type { Page as PlaywrightPage } from "playwright-core";
import type { Page as PuppeteerPage } from "puppeteer-core";
import { launchChromium } from "./browser.ts";
import { launchFirefox } from "./firefox.ts";
import type { PrivatePulse } from "./pulse.ts";
import { exactTextXPath, launchWebKit, type WebDriverSession } from "./webkit.ts";

export type Engine = "chromium" | "firefox" | "webkit";
export const ENGINES: readonly Engine[] = ["chromium", "firefox", "webkit"];

/** A CSS selector, or `{ text }` for the element showing exactly that text. */
export type Target = string | { text: string };

export interface TestPage {
  readonly engine: Engine;
  /** Loads `url` and waits for its `load` event. */
  goto(url: string): Promise<void>;
  /** Runs `fn(arg)` (or the expression `fn`) in the page; see the module comment. */
  evaluate<T = unknown, A = unknown>(
    fn: string | ((arg: A) => T | Promise<T>),
    arg?: A,
  ): Promise<T>;
  /** Clicks the first element matching `target` with real input events. */
  click(target: Target): Promise<void>;
  /** Empties the input matching `selector` and types `text` into it. */
  fill(selector: string, text: string): Promise<void>;
  /**
   * Polls the expression `predicate` in the page every 50 ms until it is truthy; throws after
   * `timeoutMs` (default 10 s), or at once if it throws.
   */
  waitFor(predicate: string, timeoutMs?: number): Promise<void>;
  /** Saves a PNG of the viewport at `path`. */
  screenshot(path: string): Promise<void>;
  /** Closes this page (for WebKit: its session and window). */
  close(): Promise<void>;
}

export interface OpenPageOptions {
  /** The private PulseAudio to play into; without it the browser uses the test's environment. */
  pulse?: PrivatePulse;
  /** The device index k of `pulse` to play into (sink `devK`). Default 0. */
  sink?: number;
  /** Loaded before `openPage` returns. Default `about:blank`. */
  url?: string;
}

export interface OpenedPage {
  page: TestPage;
  /**
   * Console errors and uncaught exceptions so far (`"console: …"`, `"pageerror: …"`). For
   * WebKit, only those after the page had loaded (see `LaunchedWebKit.consoleErrors`).
   */
  consoleErrors(): Promise<string[]>;
  /** Ends the page, the browser and all its processes (and WebKit's Xvfb). Idempotent. */
  close(): Promise<void>;
}

/** Launches `engine` on its own (headless, or on a private Xvfb for WebKit) with one page. */
export async function openPage(engine: Engine, opts: OpenPageOptions = {}): Promise<OpenedPage> {
  const pulse = opts.pulse ? { env: opts.pulse.env(opts.sink ?? 0) } : undefined;
  const url = opts.url ?? "about:blank";
  switch (engine) {
    case "chromium": {
      const chrome = await launchChromium({ pulse, headless: true });
      try {
        const page = adaptPlaywright(await chrome.page(url));
        return {
          page,
          consoleErrors: () => Promise.resolve(chrome.consoleErrors()),
          close: once(() => chrome.close()),
        };
      } catch (e) {
        await chrome.close();
        throw e;
      }
    }
    case "firefox": {
      const firefox = await launchFirefox({ pulse, headless: true });
      try {
        const page = adaptPuppeteer(await firefox.page(url));
        return {
          page,
          consoleErrors: () => Promise.resolve(firefox.consoleErrors()),
          close: once(() => firefox.close()),
        };
      } catch (e) {
        await firefox.close();
        throw e;
      }
    }
    case "webkit": {
      const webkit = await launchWebKit({ pulse });
      try {
        await webkit.page(url);
        const page = adaptWebDriver(webkit.session, (u) => webkit.page(u).then(() => {}));
        return {
          page,
          consoleErrors: () => webkit.consoleErrors(),
          close: once(() => webkit.close()),
        };
      } catch (e) {
        await webkit.close();
        throw e;
      }
    }
    default:
      throw new Error(`Unknown browser engine "${engine}"`);
  }
}

/** The expression that calls `fn` with a JSON copy of `arg` (or `fn` itself if a string). */
function expressionOf(fn: string | ((arg: never) => unknown), arg: unknown): string {
  if (typeof fn === "string") return `(${fn})`;
  return arg === undefined ? `(${fn})()` : `(${fn})(${JSON.stringify(arg)})`;
}

async function pollUntil(
  evaluate: (expr: string) => Promise<unknown>,
  predicate: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (true) {
    last = await evaluate(`(${predicate})`);
    if (last) return;
    if (Date.now() > deadline) {
      throw new Error(
        `waitFor(${predicate}) still false after ${timeoutMs} ms (last value ${
          JSON.stringify(last)
        })`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => done ??= fn();
}

/** Playwright's Page (Chromium) as a TestPage. */
export function adaptPlaywright(page: PlaywrightPage): TestPage {
  const locate = (t: Target) =>
    page.locator(typeof t === "string" ? t : `xpath=${exactTextXPath(t.text)}`).first();
  const evaluate = <T>(expr: string) => page.evaluate(expr) as Promise<T>;
  return {
    engine: "chromium",
    async goto(url) {
      await page.goto(url, { timeout: 60_000 });
    },
    evaluate: (fn, arg) => evaluate(expressionOf(fn, arg)),
    click: (t) => locate(t).click({ timeout: 10_000 }),
    fill: (selector, text) => page.locator(selector).first().fill(text, { timeout: 10_000 }),
    waitFor: (predicate, timeoutMs = 10_000) => pollUntil(evaluate, predicate, timeoutMs),
    async screenshot(path) {
      await Deno.writeFile(path, await page.screenshot({ timeout: 30_000 }));
    },
    close: () => page.context().close(),
  };
}

/** Puppeteer's Page (Firefox over WebDriver BiDi) as a TestPage. */
export function adaptPuppeteer(page: PuppeteerPage): TestPage {
  const locate = (t: Target) =>
    page.locator(typeof t === "string" ? t : `::-p-xpath(${exactTextXPath(t.text)})`)
      .setTimeout(10_000);
  const evaluate = <T>(expr: string) => page.evaluate(expr) as Promise<T>;
  return {
    engine: "firefox",
    async goto(url) {
      await page.goto(url, { timeout: 60_000 });
    },
    evaluate: (fn, arg) => evaluate(expressionOf(fn, arg)),
    click: (t) => locate(t).click(),
    fill: (selector, text) => locate(selector).fill(text),
    waitFor: (predicate, timeoutMs = 10_000) => pollUntil(evaluate, predicate, timeoutMs),
    async screenshot(path) {
      await Deno.writeFile(path, await page.screenshot());
    },
    async close() {
      const context = page.browserContext();
      await page.close();
      await context.close().catch(() => {});
    },
  };
}

/**
 * A WebDriver session (WebKit) as a TestPage. `goto` defaults to plain navigation; the
 * launcher passes its own to keep collecting the page's errors.
 */
export function adaptWebDriver(
  session: WebDriverSession,
  goto: (url: string) => Promise<void> = (url) => session.navigate(url),
): TestPage {
  const find = (t: Target) =>
    typeof t === "string" ? session.findElement(t) : session.findElementByText(t.text);
  /** Finds the target, retrying for up to 10 s while it is not there yet (like the others). */
  const locate = async (t: Target) => {
    const deadline = Date.now() + 10_000;
    while (true) {
      try {
        return await find(t);
      } catch (e) {
        if (Date.now() > deadline) {
          throw new Error(`No element matches ${JSON.stringify(t)} after 10 s: ${e}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const evaluate = async <T>(expr: string): Promise<T> => {
    const r = await session.executeAsync<{ ok: boolean; value?: T; thrown?: string }>(
      `const done = arguments[arguments.length - 1];
       Promise.resolve().then(() => ${expr}).then(
         (value) => done({ ok: true, value: value === undefined ? null : value }),
         (e) => done({ ok: false, thrown: String(e) }));`,
    );
    if (!r.ok) throw new Error(`evaluate: ${r.thrown}`);
    return r.value as T;
  };
  return {
    engine: "webkit",
    goto,
    evaluate: (fn, arg) => evaluate(expressionOf(fn, arg)),
    async click(t) {
      await session.click(await locate(t));
    },
    async fill(selector, text) {
      const el = await locate(selector);
      await session.clear(el);
      await session.sendKeys(el, text);
    },
    waitFor: (predicate, timeoutMs = 10_000) => pollUntil(evaluate, predicate, timeoutMs),
    async screenshot(path) {
      await Deno.writeFile(path, await session.screenshot());
    },
    close: () => session.delete(),
  };
}

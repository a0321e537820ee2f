/**
 * WebKitGTK as a browser peer for tests: Debian's `WebKitWebDriver` (package webkit2gtk-driver)
 * drives WebKitGTK's `MiniBrowser --automation` on a private X display, with the environment of
 * a private PulseAudio (tests/harness/pulse.ts) so its WebAudio (through GStreamer's
 * pulsesink) lands on the test's bus like any other device (design §6).
 *
 * The WebDriver client is the W3C classic protocol over `fetch` (this build of the driver has
 * no WebDriver BiDi). Clicks and keys go through WebDriver's element commands, which WebKit
 * turns into real, trusted input events: a user gesture for autoplay rules.
 */
import { alive, descendants } from "./proc.ts";
import { type PrivateDisplay, startXvfb } from "./xvfb.ts";

/** Where Debian's webkit2gtk-driver puts the driver; tests/setup.ts installs it. */
export const WEBKIT_DRIVER_PATH = "/usr/bin/WebKitWebDriver";

/** The key under which W3C WebDriver sends and takes element references. */
const ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf";

/** The GStreamer plugin without which WebKitGTK plays WebAudio into nothing. */
const GST_PULSE_PLUGIN = "gstreamer-1.0/libgstpulseaudio.so";

/** Only these are taken from the pulse environment: the rest (its `HOME`) is the test's. */
const PULSE_VARS = ["PULSE_SERVER", "PULSE_SINK", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR"];

/** An element of the current page, as the driver names it. */
export type ElementId = string;

/** A WebDriver error response, e.g. `error: "no such element"`. */
export class WebDriverError extends Error {
  constructor(readonly error: string, message: string, readonly status: number) {
    super(`WebDriver ${error}: ${message}`);
    this.name = "WebDriverError";
  }
}

/** One WebDriver session over HTTP: the W3C classic commands the tests need. */
export class WebDriverSession {
  constructor(readonly baseUrl: string, readonly id: string) {}

  /**
   * Creates a session on the driver at `baseUrl` with `capabilities` (the `alwaysMatch` set).
   * Creating one starts the browser, so it gets a long timeout.
   */
  static async create(
    baseUrl: string,
    capabilities: Record<string, unknown>,
    timeoutMs = 60_000,
  ): Promise<WebDriverSession> {
    const value = await request<{ sessionId: string }>(baseUrl, "POST", "/session", {
      capabilities: { alwaysMatch: capabilities },
    }, timeoutMs);
    return new WebDriverSession(baseUrl, value.sessionId);
  }

  /** Sends one command of this session; `path` is relative to `/session/{id}`. */
  command<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 30_000) {
    return request<T>(this.baseUrl, method, `/session/${this.id}${path}`, body, timeoutMs);
  }

  /** Loads `url` and waits for its `load` event (page load strategy "normal"). */
  async navigate(url: string): Promise<void> {
    await this.command("POST", "/url", { url }, 60_000);
  }

  url(): Promise<string> {
    return this.command<string>("GET", "/url");
  }

  title(): Promise<string> {
    return this.command<string>("GET", "/title");
  }

  /**
   * Runs `script` as a function body in the page (`arguments[i]` are `args`, element ids
   * wrapped by `element()` become DOM elements) and returns what it returns.
   */
  execute<T = unknown>(script: string, args: unknown[] = []): Promise<T> {
    return this.command<T>("POST", "/execute/sync", { script, args });
  }

  /**
   * Like `execute`, but the result is what the script passes to the callback that WebDriver
   * appends as its last argument: `arguments[arguments.length - 1](value)`.
   */
  executeAsync<T = unknown>(script: string, args: unknown[] = [], timeoutMs = 30_000): Promise<T> {
    return this.command<T>("POST", "/execute/async", { script, args }, timeoutMs + 5_000);
  }

  /** Sets the session's script, page-load and implicit-wait timeouts (ms). */
  async setTimeouts(t: { script?: number; pageLoad?: number; implicit?: number }): Promise<void> {
    await this.command("POST", "/timeouts", t);
  }

  /** The first element matching a CSS selector; throws `no such element` if none. */
  async findElement(css: string): Promise<ElementId> {
    return elementId(
      await this.command("POST", "/element", { using: "css selector", value: css }),
    );
  }

  /** Every element matching a CSS selector (maybe none). */
  async findElements(css: string): Promise<ElementId[]> {
    const list = await this.command<unknown[]>("POST", "/elements", {
      using: "css selector",
      value: css,
    });
    return list.map(elementId);
  }

  /** The first element matching an XPath expression. */
  async findElementByXPath(xpath: string): Promise<ElementId> {
    return elementId(await this.command("POST", "/element", { using: "xpath", value: xpath }));
  }

  /** The innermost element whose whitespace-normalised text is exactly `text`. */
  findElementByText(text: string): Promise<ElementId> {
    return this.findElementByXPath(exactTextXPath(text));
  }

  /** Scrolls the element into view and clicks its centre with real input events. */
  async click(el: ElementId): Promise<void> {
    await this.command("POST", `/element/${el}/click`, {});
  }

  /** Types `text` into the element, key by key. */
  async sendKeys(el: ElementId, text: string): Promise<void> {
    await this.command("POST", `/element/${el}/value`, { text });
  }

  /** Empties an input, textarea or editable element. */
  async clear(el: ElementId): Promise<void> {
    await this.command("POST", `/element/${el}/clear`, {});
  }

  /** The element's rendered text. */
  text(el: ElementId): Promise<string> {
    return this.command<string>("GET", `/element/${el}/text`);
  }

  /** A PNG of the viewport. */
  async screenshot(): Promise<Uint8Array> {
    const b64 = await this.command<string>("GET", "/screenshot", undefined, 30_000);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }

  /** Ends the session: the driver closes the browser. */
  async delete(timeoutMs = 10_000): Promise<void> {
    await this.command("DELETE", "", undefined, timeoutMs);
  }
}

/** An element id in the form `execute` takes as an argument (the page sees the element). */
export function element(id: ElementId): Record<string, string> {
  return { [ELEMENT_KEY]: id };
}

/**
 * XPath for the innermost element (not title, script or style) whose whitespace-normalised
 * text is exactly `text`. Every engine's driver accepts it, so "find by text" means the same
 * on all of them.
 */
export function exactTextXPath(text: string): string {
  const t = xpathLiteral(text.trim().replace(/\s+/g, " "));
  return `//*[not(self::title or self::script or self::style)][normalize-space(.)=${t}]` +
    `[not(.//*[normalize-space(.)=${t}])]`;
}

function xpathLiteral(s: string): string {
  if (!s.includes('"')) return `"${s}"`;
  if (!s.includes("'")) return `'${s}'`;
  return `concat(${s.split('"').map((part) => `"${part}"`).join(`, '"', `)})`;
}

function elementId(value: unknown): ElementId {
  const id = (value as Record<string, unknown> | null)?.[ELEMENT_KEY];
  if (typeof id !== "string") {
    throw new Error(`WebDriver answered without an element: ${JSON.stringify(value)}`);
  }
  return id;
}

async function request<T>(
  baseUrl: string,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(baseUrl + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json; charset=utf-8" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new Error(
      `WebDriver ${method} ${path} failed (no answer within ${timeoutMs} ms?): ${
        (e as Error).message
      }`,
    );
  }
  const text = await res.text();
  let json: { value?: unknown };
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`WebDriver ${method} ${path}: HTTP ${res.status}, not JSON: ${text}`);
  }
  const value = json.value as { error?: string; message?: string } | null | undefined;
  // Errors come with a 4xx/5xx status; a script's result may well have an `error` field.
  if (!res.ok) {
    throw new WebDriverError(
      value?.error ?? `HTTP ${res.status}`,
      value?.message ?? text,
      res.status,
    );
  }
  return value as T;
}

export interface WebKitOptions {
  /**
   * The private PulseAudio to play into: `env` as from `PrivatePulse.env(k)` (it carries
   * `PULSE_SERVER` and `XDG_RUNTIME_DIR`), and `sink` to override its `PULSE_SINK`.
   */
  pulse?: { env: Record<string, string>; sink?: string };
  /** An X display to use (e.g. `":93"`); by default a private Xvfb, stopped by `close()`. */
  display?: string;
  /**
   * MiniBrowser's autoplay policy. Default `"allow"` (like the Chromium and Firefox
   * harnesses). With `"default"`, MiniBrowser's own policy applies: an AudioContext stays
   * `suspended` until a real click (design §6).
   */
  autoplay?: "allow" | "allow-without-sound" | "deny" | "default";
  /** Extra MiniBrowser arguments (e.g. WebKitSettings as `--enable-webaudio=false`). */
  args?: string[];
}

export interface LaunchedWebKit {
  /** The WebDriver session: its one window is the page. */
  session: WebDriverSession;
  /** The X display MiniBrowser draws on. */
  display: string;
  /** Pid of the WebKitWebDriver process (MiniBrowser and WebKit's processes are below it). */
  driverPid: number;
  /**
   * Loads `url` in the session's window, starts collecting the page's errors, and returns the
   * session. One page per browser: a second call navigates the same window.
   */
  page(url: string): Promise<WebDriverSession>;
  /**
   * Console errors and uncaught exceptions so far, as text (`"console: …"` or
   * `"pageerror: …"`). Classic WebDriver has no console access (and MiniBrowser's
   * console-to-stdout setting is ignored in automation mode), so a hook is installed in each
   * document when `page()` returns or this is called: errors thrown while a page is still
   * loading are not seen.
   */
  consoleErrors(): Promise<string[]>;
  /** Ends the session, the browser's processes, the driver and the private Xvfb. */
  close(): Promise<void>;
}

/** Finds MiniBrowser: `/usr/lib/<multiarch>/webkit2gtk-4.1/MiniBrowser`, this machine's first. */
export async function findMiniBrowser(): Promise<string> {
  const path = await findUnderUsrLib("webkit2gtk-4.1/MiniBrowser");
  if (path) return path;
  throw new Error(
    `WebKitGTK's MiniBrowser is missing (/usr/lib/*/webkit2gtk-4.1/MiniBrowser): run "deno run -A tests/setup.ts" as root, or "apt-get install webkit2gtk-driver".`,
  );
}

/** The first `/usr/lib/<dir>/<rel>` that exists, this machine's multiarch directory first. */
async function findUnderUsrLib(rel: string): Promise<string | null> {
  const dirs: string[] = [];
  try {
    for await (const e of Deno.readDir("/usr/lib")) if (e.isDirectory) dirs.push(e.name);
  } catch { /* no /usr/lib */ }
  const mine = `${Deno.build.arch}-linux-gnu`;
  dirs.sort((a, b) => Number(b === mine) - Number(a === mine) || a.localeCompare(b));
  for (const d of dirs) {
    const p = `/usr/lib/${d}/${rel}`;
    try {
      await Deno.stat(p);
      return p;
    } catch { /* not here */ }
  }
  return null;
}

/**
 * Starts WebKitWebDriver on a free loopback port and a session on MiniBrowser. Throws with a
 * sentence when a part is missing (driver, MiniBrowser, GStreamer's pulse plugin, Xvfb).
 */
export async function launchWebKit(opts: WebKitOptions = {}): Promise<LaunchedWebKit> {
  try {
    await Deno.stat(WEBKIT_DRIVER_PATH);
  } catch {
    throw new Error(
      `WebKitWebDriver is not installed (${WEBKIT_DRIVER_PATH} is missing): run "deno run -A tests/setup.ts" as root, or "apt-get install webkit2gtk-driver".`,
    );
  }
  const miniBrowser = await findMiniBrowser();
  if (opts.pulse && !(await findUnderUsrLib(GST_PULSE_PLUGIN))) {
    throw new Error(
      `GStreamer's PulseAudio plugin is missing (/usr/lib/*/${GST_PULSE_PLUGIN}): WebKitGTK would play into nothing. Run "deno run -A tests/setup.ts" as root, or "apt-get install gstreamer1.0-pulseaudio".`,
    );
  }
  let xvfb: PrivateDisplay | undefined;
  const display = opts.display ?? (xvfb = await startXvfb()).display;
  const env: Record<string, string> = { ...Deno.env.toObject(), DISPLAY: display };
  if (opts.pulse) {
    for (const k of PULSE_VARS) {
      if (opts.pulse.env[k] !== undefined) env[k] = opts.pulse.env[k];
    }
    if (opts.pulse.sink) env.PULSE_SINK = opts.pulse.sink;
  }
  // No session bus here: keep GTK's accessibility bridge from looking for one.
  env.NO_AT_BRIDGE = "1";

  let driver: RunningDriver | undefined;
  let unguard: (() => void) | undefined;
  try {
    driver = await startDriver(env);
    const pid = driver.pid;
    unguard = guardSignals(async () => {
      await endProcesses([...descendants(pid), pid], 0);
      await xvfb?.stop();
    });
    const autoplay = opts.autoplay ?? "allow";
    const session = await WebDriverSession.create(driver.baseUrl, {
      "webkitgtk:browserOptions": {
        binary: miniBrowser,
        args: [
          "--automation",
          ...(autoplay === "default" ? [] : [`--autoplay-policy=${autoplay}`]),
          ...(opts.args ?? []),
        ],
      },
      pageLoadStrategy: "normal",
    }).catch((e: Error) => {
      throw new Error(
        `WebKit (${miniBrowser}) did not start a session: ${e.message}\ndriver output: ${
          driver!
            .output()
        }`,
      );
    });
    return launched(session, display, driver, xvfb, unguard);
  } catch (e) {
    unguard?.();
    await driver?.stop();
    await xvfb?.stop();
    throw e;
  }
}

interface RunningDriver {
  baseUrl: string;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

/** Spawns the driver on a free port, retrying if another process takes the port first. */
async function startDriver(env: Record<string, string>): Promise<RunningDriver> {
  let lastError = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const child = new Deno.Command(WEBKIT_DRIVER_PATH, {
      args: [`--port=${port}`, "--host=local"],
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Drained all along: a full pipe would stall the browser, whose output goes there too.
    let output = "";
    const keep = (s: ReadableStream<Uint8Array>) =>
      (async () => {
        for await (const c of s.pipeThrough(new TextDecoderStream())) {
          output = (output + c).slice(-4000);
        }
      })().catch(() => {});
    const drained = Promise.all([keep(child.stdout), keep(child.stderr)]);
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const baseUrl = `http://127.0.0.1:${port}`;
    const stop = async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
      }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 3000);
      await status;
      clearTimeout(t);
      await drained;
    };
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline) {
      try {
        const res = await fetch(`${baseUrl}/status`, { signal: AbortSignal.timeout(1000) });
        const body = await res.json();
        if (body?.value?.ready) {
          return { baseUrl, pid: child.pid, output: () => output, stop };
        }
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    await stop();
    lastError = exited
      ? `exited: ${output.trim().slice(-800)}`
      : `did not answer on port ${port} within 10 s: ${output.trim().slice(-800)}`;
  }
  throw new Error(`WebKitWebDriver failed to start: ${lastError}`);
}

/** Installs (once per document) the error hook and hands over what it caught since. */
const TAKE_ERRORS = `
  const w = window;
  if (!w.__testPageErrors) {
    const list = (w.__testPageErrors = []);
    const text = (v) => v instanceof Error ? v.message : String(v);
    w.addEventListener("error", (e) => {
      if (e instanceof ErrorEvent) list.push("pageerror: " + (e.error ? text(e.error) : e.message));
    });
    w.addEventListener("unhandledrejection", (e) => list.push("pageerror: " + text(e.reason)));
    const original = console.error;
    console.error = function (...a) {
      list.push("console: " + a.map(String).join(" "));
      return original.apply(this, a);
    };
  }
  return w.__testPageErrors.splice(0);
`;

function launched(
  session: WebDriverSession,
  display: string,
  driver: RunningDriver,
  xvfb: PrivateDisplay | undefined,
  unguard: () => void,
): LaunchedWebKit {
  const errors: string[] = [];
  let closed = false;
  const collect = async () => {
    if (closed) return;
    try {
      errors.push(...await session.execute<string[]>(TAKE_ERRORS));
    } catch { /* between documents, or the session has ended */ }
  };
  return {
    session,
    display,
    driverPid: driver.pid,
    async page(url: string) {
      await collect();
      await session.navigate(url);
      await collect();
      return session;
    },
    async consoleErrors() {
      await collect();
      return [...errors];
    },
    async close() {
      if (closed) return;
      await collect();
      closed = true;
      const tree = descendants(driver.pid);
      await session.delete(10_000).catch(() => {});
      // The driver closes MiniBrowser, which ends WebKit's processes: give them a moment to
      // go by themselves (so the driver reaps them), then end whatever is left.
      await endProcesses(tree, 3000);
      await driver.stop();
      await xvfb?.stop();
      unguard();
    },
  };
}

/** Emergency stops of the launches still running, for when the test process is interrupted. */
const running = new Set<() => Promise<void>>();
const EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type StopSignal = keyof typeof EXIT_CODES;
const handlers = new Map<StopSignal, () => void>();

/**
 * Runs `stop` if the test process gets SIGINT, SIGTERM or SIGHUP, then exits with the usual
 * code: the driver, MiniBrowser and Xvfb would otherwise outlive an interrupted test (as the
 * Chromium and Firefox launchers already ensure for theirs). Returns the unregister function.
 */
function guardSignals(stop: () => Promise<void>): () => void {
  if (running.size === 0) {
    for (const sig of Object.keys(EXIT_CODES) as StopSignal[]) {
      const handler = () => {
        const all = Promise.all([...running].map((s) => s().catch(() => {})));
        const late = new Promise((r) => setTimeout(r, 5000));
        Promise.race([all, late]).finally(() => Deno.exit(EXIT_CODES[sig]));
      };
      handlers.set(sig, handler);
      Deno.addSignalListener(sig, handler);
    }
  }
  running.add(stop);
  return () => {
    if (!running.delete(stop) || running.size > 0) return;
    for (const [sig, handler] of handlers) Deno.removeSignalListener(sig, handler);
    handlers.clear();
  };
}

/**
 * Waits up to `graceMs` for each pid to exit, then sends SIGTERM and, a second later,
 * SIGKILL. A pid is only signalled while it still is the process that was given (same start
 * time), never a newcomer that reused the number.
 */
export async function endProcesses(pids: number[], graceMs: number): Promise<void> {
  const started = new Map(pids.map((p) => [p, startTime(p)]));
  const living = () => pids.filter((p) => alive(p) && startTime(p) === started.get(p));
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (living().length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  await waitGone(graceMs);
  for (const sig of ["SIGTERM", "SIGKILL"] as const) {
    const left = living();
    if (!left.length) return;
    for (const p of left) {
      try {
        Deno.kill(p, sig);
      } catch { /* gone */ }
    }
    await waitGone(1000);
  }
}

/** Field 22 of /proc/PID/stat (clock ticks after boot), or null if the pid is gone. */
function startTime(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * The desktop window: one native window showing one URL. This is the only file that knows
 * about `webview-napi` (wry + tao; WebKitGTK on Linux), so Deno's own `Deno.BrowserWindow`
 * can replace it later behind the same three names: `openWindow`, `windowProblem`,
 * `WindowUnavailableError`.
 *
 * Facts this file relies on (webview-napi 2.2.0, measured under Xvfb on Debian 12):
 * - The library must live on the process's main thread: tao panics and aborts the whole
 *   process in a Worker or inside `deno test` (which runs test modules on another thread).
 * - Only one `Application` (tao event loop) may exist per process on Linux/GTK, so one is
 *   created lazily and kept for every window.
 * - With no reachable display, `new Application()` panics and aborts the process (no JS
 *   error), so `windowProblem()` connects to the display first.
 * - `app.run()` takes over the thread and starves Deno's event loop; `pollEvents()` every
 *   16 ms keeps both alive at ≈ 2 % CPU of one core.
 * - Closing a window (user or `close()`) only destroys it: the process goes on. It shows up
 *   synchronously in the pump as `isCreated` turning false. The library's `onEvent` callback
 *   is deliberately not used: it is a thread-safe function that keeps Deno's event loop alive
 *   until it is removed again.
 * - Loaded as CommonJS through `createRequire`: the ESM entry declares a module-level
 *   `Error` binding, so any load failure surfaces as "Cannot access 'Error' before
 *   initialization" instead of the real reason.
 */
import { createRequire } from "node:module";
import { Buffer } from "node:buffer";
import type * as Webview from "webview-napi";

/** What to show and how big. Sizes are logical pixels. */
export interface WindowOptions {
  url: string;
  title?: string;
  width?: number;
  height?: number;
  /**
   * Window icon as straight RGBA bytes (`width * height * 4`). webview-napi also accepts a
   * string, but a PNG path is silently ignored (no icon), so there is no path option here.
   */
  icon?: { rgba: Uint8Array; width: number; height: number };
}

/** An open window. */
export interface AppWindow {
  /**
   * Resolves once the window is gone: closed by the user or by `close()`. Rejects only if the
   * native event loop itself fails.
   */
  readonly closed: Promise<void>;
  /** Destroys the window; `closed` resolves on the next pump (≤ 16 ms). Safe to repeat. */
  close(): void;
  setTitle(title: string): void;
}

/** No window can be opened here; the message is one sentence a user can act on. */
export class WindowUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WindowUnavailableError";
  }
}

const PUMP_INTERVAL_MS = 16;
/**
 * The pump's period while nothing moves on screen. Measured idle CPU of the app with its window:
 * 1.5–1.9 % of a core at 16 ms, 1.2 % at 33 ms; at 40 ms a click waits at most 40 ms.
 */
const IDLE_PUMP_INTERVAL_MS = 40;
let pumpIntervalMs = PUMP_INTERVAL_MS;
/** The window exists after the first pump (≈ 0.1 s here); 10 s means something is wrong. */
const CREATE_TIMEOUT_MS = 10_000;
const FALLBACK = "Run with --no-window and open the printed address in a browser.";

type WebviewModule = typeof Webview;

interface OpenEntry {
  win: Webview.BrowserWindow;
  wasCreated: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
}

let library: WebviewModule | WindowUnavailableError | undefined;
let app: Webview.Application | undefined;
const openEntries = new Set<OpenEntry>();
let pumpTimer: ReturnType<typeof setInterval> | undefined;

/**
 * Why a window cannot be opened in this process right now, as one sentence, or null if it
 * can. Cheap enough to call before starting anything (the first call loads the library,
 * ~0.1–0.2 s). Checks, in order: `--allow-ffi`, a reachable display (Linux), the main
 * thread, and that the native library with WebKitGTK loads.
 */
export function windowProblem(): string | null {
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return "Cannot open the PhaseLock window: it needs the --allow-ffi permission. " +
        "Run with --allow-ffi, or with --no-window and open the printed address in a browser.";
    }
  } catch { /* permissions API unavailable: let the load below decide */ }
  if (Deno.build.os === "linux" || Deno.build.os === "freebsd") {
    const display = displayProblem();
    if (display) return display;
  }
  const thread = threadProblem();
  if (thread) return thread;
  const lib = loadLibrary();
  return lib instanceof WindowUnavailableError ? lib.message : null;
}

/**
 * Opens a window on `url` and resolves once the native window exists. Throws
 * `WindowUnavailableError` when `windowProblem()` reports one. Must be called on the main
 * thread of a `deno run` process (not in a Worker, not inside `deno test`).
 */
export async function openWindow(opts: WindowOptions): Promise<AppWindow> {
  if (typeof opts?.url !== "string" || opts.url === "") {
    throw new TypeError("openWindow() needs a url");
  }
  const { width = 1100, height = 760 } = opts;
  if (!(width > 0 && height > 0)) {
    throw new RangeError(`Window size must be positive, got ${width}x${height}`);
  }
  if (opts.icon) {
    const { rgba, width: w, height: h } = opts.icon;
    if (rgba.length !== w * h * 4) {
      throw new RangeError(`Icon must be ${w}x${h}x4 = ${w * h * 4} bytes, got ${rgba.length}`);
    }
  }
  const problem = windowProblem();
  if (problem) throw new WindowUnavailableError(problem);
  const lib = loadLibrary() as WebviewModule;

  let win: Webview.BrowserWindow;
  try {
    app ??= new lib.Application({ exitOnLastWindowClosed: false });
    win = app.createBrowserWindow({ title: opts.title ?? "PhaseLock", width, height });
    // Private: the UI keeps nothing in web storage, so the engine need not write any to disk
    // (a portable run leaves no web data in the user's profile).
    win.createWebview({ url: opts.url, incognito: true });
  } catch (e) {
    throw new WindowUnavailableError(
      `Cannot open the PhaseLock window: ${deepestCause(e)}. ${FALLBACK}`,
      { cause: e },
    );
  }

  let entry!: OpenEntry;
  const closed = new Promise<void>((resolve, reject) => {
    entry = { win, wasCreated: false, resolve, reject };
  });
  openEntries.add(entry);
  startPump();

  const deadline = performance.now() + CREATE_TIMEOUT_MS;
  while (!entry.wasCreated && openEntries.has(entry)) {
    if (performance.now() > deadline) {
      forget(entry);
      try {
        win.close();
      } catch { /* never created */ }
      throw new WindowUnavailableError(
        `Cannot open the PhaseLock window: the window system did not create it within ${
          CREATE_TIMEOUT_MS / 1000
        } s. ${FALLBACK}`,
      );
    }
    await new Promise((r) => setTimeout(r, PUMP_INTERVAL_MS));
  }
  if (!openEntries.has(entry) && !entry.wasCreated) await closed; // rethrows a pump failure
  if (opts.icon) {
    // Set before the native window exists, the icon is silently dropped.
    const { rgba, width: w, height: h } = opts.icon;
    win.setWindowIcon(Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength), w, h);
  }

  return {
    closed,
    close() {
      if (!openEntries.has(entry)) return;
      try {
        win.close();
      } catch (e) {
        forget(entry);
        entry.reject(e);
      }
    },
    setTitle(title: string) {
      if (openEntries.has(entry)) win.setTitle(title);
    },
  };
}

/**
 * Tells the pump whether the window shows something that moves (playback, a person using it):
 * then it runs every 16 ms, otherwise every 40 ms, which saves about a third of its CPU.
 */
export function setWindowBusy(busy: boolean): void {
  const ms = busy ? PUMP_INTERVAL_MS : IDLE_PUMP_INTERVAL_MS;
  if (ms === pumpIntervalMs) return;
  pumpIntervalMs = ms;
  if (pumpTimer !== undefined) {
    clearInterval(pumpTimer);
    pumpTimer = setInterval(pump, pumpIntervalMs);
  }
}

function startPump(): void {
  if (pumpTimer !== undefined) return;
  pumpTimer = setInterval(pump, pumpIntervalMs);
  pump();
}

function pump(): void {
  try {
    app!.pollEvents();
  } catch (e) {
    const err = new WindowUnavailableError(
      `The PhaseLock window stopped: ${(e as Error)?.message ?? e}. ${FALLBACK}`,
      { cause: e },
    );
    for (const entry of [...openEntries]) {
      forget(entry);
      entry.reject(err);
    }
    return;
  }
  for (const entry of [...openEntries]) {
    const created = entry.win.isCreated;
    if (created) entry.wasCreated = true;
    else if (entry.wasCreated) {
      forget(entry);
      entry.resolve();
    }
  }
}

/** Drops a window from the pump; the pump stops with the last one so the process may exit. */
function forget(entry: OpenEntry): void {
  openEntries.delete(entry);
  if (openEntries.size === 0 && pumpTimer !== undefined) {
    clearInterval(pumpTimer);
    pumpTimer = undefined;
  }
}

function loadLibrary(): WebviewModule | WindowUnavailableError {
  if (library) return library;
  try {
    library = createRequire(import.meta.url)("webview-napi") as WebviewModule;
  } catch (e) {
    const reason = deepestCause(e);
    const webkit = /webkit|gtk|soup|javascriptcore/i.test(reason);
    library = new WindowUnavailableError(
      webkit
        ? `Cannot open the PhaseLock window: WebKitGTK 4.1 could not be loaded (${reason}). ` +
          `Install it (Debian/Ubuntu: apt install libwebkit2gtk-4.1-0), or run with ` +
          `--no-window and open the printed address in a browser.`
        : `Cannot open the PhaseLock window: the webview library could not be loaded (${reason}). ${FALLBACK}`,
      { cause: e },
    );
  }
  return library;
}

/** napi-rs wraps each failed attempt in a cause chain; the first attempt is the innermost. */
function deepestCause(e: unknown): string {
  let cur = e as { message?: string; cause?: unknown } | undefined;
  while (cur && typeof cur === "object" && cur.cause) cur = cur.cause as typeof cur;
  return String(cur?.message ?? e).split("\n")[0].trim();
}

function threadProblem(): string | null {
  let onMain: boolean | null = null;
  try {
    if (Deno.build.os === "linux") {
      const libc = Deno.dlopen("libc.so.6", { gettid: { parameters: [], result: "i32" } });
      try {
        onMain = libc.symbols.gettid() === Deno.pid;
      } finally {
        libc.close();
      }
    } else if (Deno.build.os === "darwin") {
      const sys = Deno.dlopen("libSystem.B.dylib", {
        pthread_main_np: { parameters: [], result: "i32" },
      });
      try {
        onMain = sys.symbols.pthread_main_np() === 1;
      } finally {
        sys.close();
      }
    }
  } catch { /* cannot tell: assume the main thread */ }
  return onMain === false
    ? "Cannot open the PhaseLock window: it must be opened from the main thread of a " +
      "`deno run` process, not from a Worker or `deno test`."
    : null;
}

function displayProblem(): string | null {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined;
    }
  };
  // GTK tries Wayland first (libwayland falls back to "wayland-0" when WAYLAND_DISPLAY is
  // unset), then X11, unless GDK_BACKEND pins one.
  const backend = env("GDK_BACKEND");
  const wayland = env("WAYLAND_DISPLAY");
  if (backend !== "x11") {
    const name = wayland ?? "wayland-0";
    const dir = env("XDG_RUNTIME_DIR");
    const path = name.startsWith("/") ? name : dir ? `${dir}/${name}` : undefined;
    try {
      if (path && Deno.statSync(path).isSocket) return null;
    } catch { /* no compositor there: X11 below */ }
  }
  const display = env("DISPLAY");
  if (!display) {
    return `Cannot open the PhaseLock window: no display found (${
      wayland && backend !== "x11" ? "WAYLAND_DISPLAY points to no socket and DISPLAY" : "DISPLAY"
    } is not set). ${FALLBACK}`;
  }
  if (heldDisplay === display) return null;
  // GTK aborts the process on a display it cannot open, so try it first the same way.
  let x11: Deno.DynamicLibrary<{
    XOpenDisplay: { parameters: ["buffer"]; result: "pointer" };
    XCloseDisplay: { parameters: ["pointer"]; result: "i32" };
  }>;
  try {
    x11 = Deno.dlopen("libX11.so.6", {
      XOpenDisplay: { parameters: ["buffer"], result: "pointer" },
      XCloseDisplay: { parameters: ["pointer"], result: "i32" },
    });
  } catch (e) {
    return `Cannot open the PhaseLock window: the X11 library could not be loaded (${
      deepestCause(e)
    }). Install WebKitGTK 4.1 (Debian/Ubuntu: apt install libwebkit2gtk-4.1-0), or run with ` +
      `--no-window and open the printed address in a browser.`;
  }
  const dpy = x11.symbols.XOpenDisplay(new TextEncoder().encode(display + "\0"));
  if (!dpy) {
    x11.close();
    return `Cannot open the PhaseLock window: cannot connect to the X display "${display}" ` +
      `(is it running, and may this user use it?). ${FALLBACK}`;
  }
  // The probe's connection stays open for the life of the process. An X server that resets
  // when its last client leaves (Xvfb does) could otherwise be resetting just as GTK connects,
  // and tao aborts the process on that (measured: 4 of 8 launches on a busy machine; 0 of 8
  // with a connection held).
  heldDisplay = display;
  return null;
}

/** The display whose probe connection is kept open (see displayProblem). */
let heldDisplay: string | null = null;

/**
 * Where PhaseLock keeps what it writes: settings, the cache of tracks, the log, and the
 * window's own data.
 *
 * Installed, it uses the OS's folders (XDG on Linux, Library on macOS, AppData on Windows).
 * Portable, everything goes into one folder and nothing into the user's profile: a folder
 * named `PhaseLock Data` beside the executable switches this on (inside an AppImage: beside
 * the `.AppImage` file; on macOS: beside `PhaseLock.app`), and `--data-dir DIR` forces it.
 * The layout of a portable folder:
 *
 *   settings/             settings.json (speaker settings), app.json (names used)
 *   cache/                tracks/, requests/, uploads/
 *   logs/phaselock.log
 *   webview/              the window's toolkit and engine data (Linux: the XDG folders)
 *
 * `--config-dir`, `--cache-dir` and `--log-file` still win over either. The one thing a
 * portable run writes elsewhere is the compiled binary's native window library, which the
 * runtime extracts into the OS temp folder.
 */

/** The folder beside the executable whose presence makes a run portable. */
export const PORTABLE_FOLDER = "PhaseLock Data";

export type CacheKind = "tracks" | "requests" | "uploads";

/** What the lookup needs from the process; injectable so that every OS is testable anywhere. */
export interface Surroundings {
  os: typeof Deno.build.os;
  env: (key: string) => string | undefined;
  /** The running executable (`Deno.execPath()`). */
  execPath: string;
  /** True for a compiled binary; a source run's executable is `deno` itself. */
  compiled: boolean;
  isDir: (path: string) => boolean;
}

export function currentSurroundings(): Surroundings {
  const execPath = Deno.execPath();
  return {
    os: Deno.build.os,
    env: (k) => Deno.env.get(k),
    execPath,
    compiled: !/(^|[\\/])deno(\.exe)?$/i.test(execPath),
    isDir: (p) => {
      try {
        return Deno.statSync(p).isDirectory;
      } catch {
        return false;
      }
    },
  };
}

const parentOf = (p: string) => p.replace(/[\\/][^\\/]*[\\/]?$/, "") || "/";

/**
 * The portable folder this run uses, or null: `--data-dir`, else `PhaseLock Data` beside the
 * compiled executable (beside `$APPIMAGE` inside an AppImage; beside the `.app` on macOS).
 */
export function portableRoot(
  flags: Record<string, unknown>,
  s: Surroundings = currentSurroundings(),
): string | null {
  const forced = flags["data-dir"];
  if (typeof forced === "string" && forced !== "") return forced;
  if (!s.compiled) return null;
  let beside = parentOf(s.execPath);
  const appImage = s.env("APPIMAGE");
  if (s.os === "linux" && appImage) beside = parentOf(appImage);
  const bundle = s.os === "darwin" && /^(.*)[\\/][^\\/]+\.app[\\/]Contents[\\/]MacOS$/.exec(beside);
  if (bundle) beside = bundle[1] || "/";
  const sep = s.os === "windows" ? "\\" : "/";
  const candidate = `${beside}${sep}${PORTABLE_FOLDER}`;
  return s.isDir(candidate) ? candidate : null;
}

/** The folders and file one run writes to. */
export interface DataDirs {
  /** The portable folder, when the run is portable. */
  portable: string | null;
  /** Remembered settings: `settings.json`, `app.json`. */
  config: string;
  /** The cache folder for one kind of file. */
  cache: (kind: CacheKind) => string;
  /** The log file. */
  log: string;
  /** The window's own data folder when portable (null: the toolkit's defaults). */
  webview: string | null;
}

/** Resolves every folder from the flags, the portable folder and the OS's conventions. */
export function dataDirs(
  flags: Record<string, unknown>,
  s: Surroundings = currentSurroundings(),
): DataDirs {
  const root = portableRoot(flags, s);
  const win = s.os === "windows";
  const join = (...parts: string[]) => parts.join(win ? "\\" : "/");
  const home = s.env("HOME") ?? s.env("USERPROFILE") ?? ".";
  const xdg = (key: string, fallback: string) => s.env(key) || join(home, fallback);

  const osConfig = win
    ? join(s.env("APPDATA") ?? home, "PhaseLock")
    : s.os === "darwin"
    ? join(home, "Library", "Application Support", "PhaseLock")
    : join(xdg("XDG_CONFIG_HOME", ".config"), "phaselock");
  const osCache = win
    ? join(s.env("LOCALAPPDATA") ?? home, "PhaseLock")
    : s.os === "darwin"
    ? join(home, "Library", "Caches", "PhaseLock")
    : join(xdg("XDG_CACHE_HOME", ".cache"), "phaselock");
  const osLog = win
    ? join(s.env("LOCALAPPDATA") ?? home, "PhaseLock", "Logs", "phaselock.log")
    : s.os === "darwin"
    ? join(home, "Library", "Logs", "PhaseLock", "phaselock.log")
    : join(xdg("XDG_STATE_HOME", join(".local", "state")), "phaselock", "phaselock.log");

  const given = (key: string) => {
    const v = flags[key];
    return typeof v === "string" && v !== "" ? v : null;
  };
  const cacheGiven = given("cache-dir");
  const cacheBase = root ? join(root, "cache") : osCache;
  return {
    portable: root,
    config: given("config-dir") ?? (root ? join(root, "settings") : osConfig),
    // An explicit --cache-dir keeps received tracks at its top (as it always has).
    cache: (kind) =>
      cacheGiven
        ? (kind === "tracks" ? cacheGiven : join(cacheGiven, kind))
        : join(cacheBase, kind),
    log: given("log-file") ?? (root ? join(root, "logs", "phaselock.log") : osLog),
    webview: root ? join(root, "webview") : null,
  };
}

/**
 * Points the window toolkit's own files into `dir` before any window exists: on Linux, GTK
 * and WebKitGTK write under the XDG folders (fonts cache, web engine data, recent files); on
 * Windows, WebView2 honours `WEBVIEW2_USER_DATA_FOLDER`. macOS's WKWebView has no such
 * switch: the window is opened private there (as everywhere), so it keeps no web data at all.
 */
export function confineToolkit(dir: string, os: typeof Deno.build.os = Deno.build.os): void {
  const sep = os === "windows" ? "\\" : "/";
  const sub = (name: string) => {
    const p = `${dir}${sep}${name}`;
    Deno.mkdirSync(p, { recursive: true });
    return p;
  };
  if (os === "windows") {
    Deno.env.set("WEBVIEW2_USER_DATA_FOLDER", sub("WebView2"));
    return;
  }
  if (os === "darwin") return;
  // libpulse finds its cookie under XDG_CONFIG_HOME (and makes one there when missing): keep
  // the user's own cookie so that a sound server that asks for it still lets us in.
  const home = Deno.env.get("HOME") ?? ".";
  const cookie = `${Deno.env.get("XDG_CONFIG_HOME") || `${home}/.config`}/pulse/cookie`;
  if (!Deno.env.get("PULSE_COOKIE") && existsFile(cookie)) Deno.env.set("PULSE_COOKIE", cookie);
  Deno.env.set("XDG_CONFIG_HOME", sub("config"));
  Deno.env.set("XDG_CACHE_HOME", sub("cache"));
  Deno.env.set("XDG_DATA_HOME", sub("data"));
  Deno.env.set("XDG_STATE_HOME", sub("state"));
}

function existsFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

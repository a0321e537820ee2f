/**
 * `deno task bench:app [--runs N] [--idle-seconds S] [--no-headless-idle] [--staged]`
 *
 * The app's own goals, measured on the real app (`main.ts`) under a private Xvfb (needs Xvfb
 * and libX11; ImageMagick is not used here):
 *   (a) launch → the window shows Home: from spawning `main.ts` to the first frame of the X
 *       screen that shows the Home screen's colours (≥ 50 % background #121212 and ≥ 0.5 %
 *       accent #1DB954). Frames are read in-process with XGetImage every POLL_MS; the figure is
 *       the end of the first Home frame's capture, so it is an upper bound by at most one
 *       polling period (reported as resolution). One uncounted warm-up launch, then N runs
 *       (default 3), each and median; goal ≤ 1 s.
 *   (b) the UI bundle's gzip size, from `deno run -A app/ui_assets.ts` (it rebuilds the
 *       bundle); goal ≤ 100 KB.
 *   (c) idle CPU with the window open on Home and no jam, over S seconds (default 10) from
 *       /proc: the app process, and its descendants (WebKit's web and network processes);
 *       goal ≤ 2 % of one core.
 *   (d) idle CPU with `--no-window` over the same time (skip with --no-headless-idle).
 * With `--staged` every launch runs from a copy of exactly the binary's file set
 * (packaging/manifest.ts): the closest this machine gets to launching the compiled binary.
 * Prints the figures as one JSON line, then a one-line summary. Everything it starts (Xvfb,
 * apps, their WebKit helpers) is stopped by its own pid before it exits, also on Ctrl+C.
 */
import { alive, AppProcess, descendants, exitWithin, procUsage } from "../tests/harness/proc.ts";
import { hostTarget, stageTree } from "../packaging/manifest.ts";
import { type PrivateDisplay, requestCloseLikeUser, startXvfb } from "../tests/harness/xvfb.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** Where launches run from: the repository, or (--staged) the binary's file set. */
let launchFrom: { cwd?: string; script?: string } = {};
const POLL_MS = 20;
const LAUNCH_TIMEOUT_MS = 30_000;
const GOALS = { launchMs: 1000, gzipBytes: 100 * 1024, idleCpuPercent: 2 };
const BG = [0x12, 0x12, 0x12];
const ACCENT = [0x1d, 0xb9, 0x54];

const realNow = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => console.error(`[bench:app] ${s}`);
const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x: number, d = 1) => Number.isFinite(x) ? Number(x.toFixed(d)) : null;

// ---- everything started here, for cleanup ----------------------------------------------
const apps = new Set<AppProcess>();
const displays = new Set<PrivateDisplay>();
const helperPids = new Set<number>();
const tmpDirs = new Set<string>();

async function stopApp(p: AppProcess): Promise<Deno.CommandStatus> {
  for (const pid of descendants(p.child.pid)) helperPids.add(pid);
  p.kill("SIGTERM");
  let status = await exitWithin(p, 5000);
  if (!status) {
    p.kill("SIGKILL");
    status = await p.exited;
  }
  apps.delete(p);
  return status;
}

async function cleanup(): Promise<void> {
  for (const p of [...apps]) await stopApp(p);
  const deadline = performance.now() + 3000;
  while ([...helperPids].some(alive) && performance.now() < deadline) await sleep(100);
  for (const pid of [...helperPids].filter(alive)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  for (const d of [...displays]) {
    await d.stop();
    displays.delete(d);
  }
  for (const t of [...tmpDirs]) await Deno.remove(t, { recursive: true }).catch(() => {});
}

// ---- /proc ------------------------------------------------------------------------------
function comm(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return "?";
  }
}

interface ProcCpu {
  pid: number;
  name: string;
  cpuPercent: number | null;
  rssMb: number | null;
}

/** CPU (% of one core) of `pid` and its descendants over `seconds`, from /proc. */
async function idleCpu(pid: number, seconds: number): Promise<{
  app: ProcCpu;
  helpers: ProcCpu[];
  totalPercent: number | null;
}> {
  const pids = [pid, ...descendants(pid)];
  for (const p of pids.slice(1)) helperPids.add(p);
  const before = await Promise.all(pids.map(procUsage));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const after = await Promise.all(pids.map(procUsage));
  const wall = (performance.now() - t0) / 1000;
  const rows: ProcCpu[] = pids.map((p, i) => ({
    pid: p,
    name: comm(p),
    cpuPercent: before[i] && after[i]
      ? round(((after[i]!.cpuSec - before[i]!.cpuSec) / wall) * 100, 2)
      : null,
    rssMb: after[i] ? round(after[i]!.rssMb, 0) : null,
  }));
  const known = rows.filter((r) => r.cpuPercent !== null);
  return {
    app: rows[0],
    helpers: rows.slice(1),
    totalPercent: known.length ? round(known.reduce((s, r) => s + r.cpuPercent!, 0), 2) : null,
  };
}

// ---- the X screen, read in-process ------------------------------------------------------
/**
 * XGetImage on the root window through libX11 (≈ 10 ms for 1280x800 here, against ≈ 70 ms
 * for ImageMagick's `import` plus a decode), so the launch figure can be polled finely.
 */
class ScreenReader {
  #x = Deno.dlopen("libX11.so.6", {
    XOpenDisplay: { parameters: ["buffer"], result: "pointer" },
    XCloseDisplay: { parameters: ["pointer"], result: "i32" },
    XDefaultRootWindow: { parameters: ["pointer"], result: "u64" },
    XGetImage: {
      parameters: ["pointer", "u64", "i32", "i32", "u32", "u32", "u64", "i32"],
      result: "pointer",
    },
    XDestroyImage: { parameters: ["pointer"], result: "i32" },
  });
  #dpy: Deno.PointerValue;
  #root: bigint;

  constructor(display: string, readonly width: number, readonly height: number) {
    this.#dpy = this.#x.symbols.XOpenDisplay(new TextEncoder().encode(display + "\0"));
    if (!this.#dpy) {
      this.#x.close();
      throw new Error(`Cannot connect to X display ${display}.`);
    }
    this.#root = this.#x.symbols.XDefaultRootWindow(this.#dpy);
  }

  /** Shares (0..1) of background and accent pixels, sampling every second pixel each way. */
  shares(): { bg: number; accent: number } {
    const ZPixmap = 2;
    const img = this.#x.symbols.XGetImage(
      this.#dpy,
      this.#root,
      0,
      0,
      this.width,
      this.height,
      0xffffffffffffffffn,
      ZPixmap,
    );
    if (!img) throw new Error("XGetImage failed");
    try {
      // XImage (x86_64): data@16, bytes_per_line@44, bits_per_pixel@48, red/green/blue_mask@56/64/72.
      const v = new Deno.UnsafePointerView(img);
      const bpl = v.getInt32(44), bpp = v.getInt32(48);
      if (bpp !== 32) throw new Error(`Expected a 32-bit ZPixmap, got ${bpp} bits per pixel`);
      const shift = (mask: bigint) => {
        let s = 0;
        while (mask > 0n && (mask & 1n) === 0n) {
          mask >>= 1n;
          s++;
        }
        return s / 8; // byte index in a little-endian 32-bit pixel
      };
      const [ri, gi, bi] = [56, 64, 72].map((o) => shift(v.getBigUint64(o)));
      const data = new Uint8Array(
        Deno.UnsafePointerView.getArrayBuffer(v.getPointer(16)!, bpl * this.height),
      );
      let n = 0, bg = 0, accent = 0;
      const near = (i: number, c: number[]) =>
        Math.abs(data[i + ri] - c[0]) <= 6 && Math.abs(data[i + gi] - c[1]) <= 6 &&
        Math.abs(data[i + bi] - c[2]) <= 6;
      for (let y = 0; y < this.height; y += 2) {
        for (let x = 0, i = y * bpl; x < this.width; x += 2, i += 8) {
          n++;
          if (near(i, BG)) bg++;
          else if (near(i, ACCENT)) accent++;
        }
      }
      return { bg: bg / n, accent: accent / n };
    } finally {
      this.#x.symbols.XDestroyImage(img);
    }
  }

  close(): void {
    this.#x.symbols.XCloseDisplay(this.#dpy);
    this.#x.close();
  }
}

// ---- the measurements -------------------------------------------------------------------
function appArgs(tmp: string, extra: string[] = []): string[] {
  return [
    ...["--audio", "null", "--no-discover", "--no-advertise", "--bind", "127.0.0.1", "--print-url"],
    ...[
      "--config-dir",
      `${tmp}/cfg`,
      "--cache-dir",
      `${tmp}/cache`,
      "--log-file",
      `${tmp}/app.log`,
    ],
    ...extra,
  ];
}

interface Launch {
  launchToHomeMs: number;
  launchToUiLineMs: number;
  frames: number;
  /** Mean time one frame read took; the polling period is POLL_MS plus this. */
  frameReadMs: number;
  closeToExitMs: number | null;
  exitCode: number | null;
}

/**
 * One launch with a window on a fresh Xvfb. With `idleSeconds`, also measures idle CPU once
 * Home shows (after a 2 s settle).
 */
async function launch(
  idleSeconds = 0,
): Promise<Launch & { idle?: Awaited<ReturnType<typeof idleCpu>> }> {
  const x = await startXvfb({ screen: "1280x800x24" });
  displays.add(x);
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-bench-app-" });
  tmpDirs.add(tmp);
  // Opened before the app and held to the end: Xvfb resets whenever its last client leaves,
  // and the app's display probe (connect, disconnect) right before GTK connects would otherwise
  // let GTK's connect land in that reset on a busy machine (tao panics, the app aborts).
  const screen = new ScreenReader(x.display, 1280, 800);
  const app = new AppProcess(appArgs(tmp), {
    env: { DISPLAY: x.display, GDK_BACKEND: "x11" },
    ...launchFrom,
  });
  apps.add(app);
  try {
    let frames = 0, readMs = 0, homeAt = NaN;
    let last = { bg: 0, accent: 0 };
    let exitedEarly = false;
    app.exited.then(() => exitedEarly = true);
    while (realNow() - app.spawnedMs < LAUNCH_TIMEOUT_MS && !exitedEarly) {
      const t = performance.now();
      last = screen.shares();
      readMs += performance.now() - t;
      frames++;
      if (last.bg > 0.5 && last.accent > 0.005) {
        homeAt = realNow();
        break;
      }
      await sleep(POLL_MS);
    }
    if (!Number.isFinite(homeAt)) {
      throw new Error(
        `Home did not show within ${LAUNCH_TIMEOUT_MS / 1000} s (last frame: background ${
          (last.bg * 100).toFixed(1)
        } %, accent ${(last.accent * 100).toFixed(2)} %; app ${
          exitedEarly ? "exited" : "running"
        }). stderr: ${app.stderr.slice(-800)}`,
      );
    }
    const ui = await app.waitFor((e) => e.type === "ui", 5000, "the UI address");
    const result: Launch & { idle?: Awaited<ReturnType<typeof idleCpu>> } = {
      launchToHomeMs: round(homeAt - app.spawnedMs, 0)!,
      launchToUiLineMs: round(ui.rxMs! - app.spawnedMs, 0)!,
      frames,
      frameReadMs: round(readMs / frames, 1)!,
      closeToExitMs: null,
      exitCode: null,
    };
    if (idleSeconds > 0) {
      await sleep(2000);
      result.idle = await idleCpu(app.child.pid, idleSeconds);
    }
    // End it the way a user does: close the window.
    for (const pid of descendants(app.child.pid)) helperPids.add(pid);
    const closeAt = realNow();
    if (requestCloseLikeUser(x.display, "PhaseLock")) {
      const status = await exitWithin(app, 10_000);
      if (status) {
        result.closeToExitMs = round(realNow() - closeAt, 0);
        result.exitCode = status.code;
      }
    }
    return result;
  } finally {
    screen.close();
    await stopApp(app);
    await x.stop();
    displays.delete(x);
  }
}

async function headlessIdle(seconds: number) {
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-bench-app-" });
  tmpDirs.add(tmp);
  const app = new AppProcess(appArgs(tmp, ["--no-window"]), launchFrom);
  apps.add(app);
  try {
    await app.waitFor((e) => e.type === "ui", LAUNCH_TIMEOUT_MS, "the UI address");
    await sleep(2000);
    return await idleCpu(app.child.pid, seconds);
  } finally {
    await stopApp(app);
  }
}

async function bundleSize() {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}app/ui_assets.ts`],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.trim().startsWith("{"));
  if (!out.success || !line) {
    throw new Error(
      `app/ui_assets.ts failed (${out.code}): ${new TextDecoder().decode(out.stderr).slice(-800)}`,
    );
  }
  return JSON.parse(line) as {
    buildMs: number;
    jsBytes: number;
    gzipBytes: { js: number; css: number; html: number; total: number };
  };
}

async function main(): Promise<number> {
  const args = [...Deno.args];
  const opt = (name: string, dflt: number) => {
    const i = args.indexOf(`--${name}`);
    if (i < 0) return dflt;
    const v = Number(args[i + 1]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
    return v;
  };
  const runs = Math.min(20, Math.round(opt("runs", 3)));
  const idleSeconds = Math.min(120, opt("idle-seconds", 10));
  const headless = !args.includes("--no-headless-idle");
  if (args.includes("--staged")) {
    const target = hostTarget();
    if (!target) throw new Error(`${Deno.build.target} is not a build target`);
    const dir = await Deno.makeTempDir({ prefix: "phaselock-bench-staged-" });
    tmpDirs.add(dir);
    await bundleSize(); // builds the bundles the copy carries
    const files = await stageTree(dir, target);
    launchFrom = { cwd: dir, script: `${dir}/main.ts` };
    log(`launching from a copy of the binary's ${files} files`);
  }
  const errors: string[] = [];
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (e) {
      errors.push(`${what}: ${(e as Error).message.split("\n")[0]}`);
      log(`${what} failed: ${(e as Error).message}`);
      return null;
    }
  };

  // (b) first: it rebuilds the bundle, so no launch below pays for a build.
  log("(b) UI bundle …");
  const bundle = await attempt("bundle", bundleSize);
  log("(a) launches: one warm-up, then " + runs);
  const warmup = await attempt("warm-up launch", () => launch());
  const launches: Launch[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await attempt(`launch ${i + 1}`, () => launch());
    if (r) launches.push(r);
    log(`  launch ${i + 1}: ${r ? `${r.launchToHomeMs} ms` : "failed"}`);
  }
  log(`(c) idle with the window on Home, ${idleSeconds} s …`);
  const windowIdle = (await attempt("idle with window", () => launch(idleSeconds)))?.idle ?? null;
  let noWindowIdle = null;
  if (headless) {
    log(`(d) idle with --no-window, ${idleSeconds} s …`);
    noWindowIdle = await attempt("idle without window", () => headlessIdle(idleSeconds));
  }

  const homeMs = launches.map((l) => l.launchToHomeMs);
  const resolutionMs = round(POLL_MS + median(launches.map((l) => l.frameReadMs)), 0);
  const figures = {
    staged: Boolean(launchFrom.script),
    machine: {
      cores: navigator.hardwareConcurrency,
      loadavg: Deno.loadavg().map((x) => round(x, 2)),
      deno: Deno.version.deno,
    },
    launchToHome: {
      runsMs: homeMs,
      medianMs: round(median(homeMs), 0),
      resolutionMs,
      warmupMs: warmup?.launchToHomeMs ?? null,
      uiLineMedianMs: round(median(launches.map((l) => l.launchToUiLineMs)), 0),
      closeToExitMs: launches.map((l) => l.closeToExitMs),
      exitCodes: launches.map((l) => l.exitCode),
      goalMs: GOALS.launchMs,
      met: homeMs.length > 0 && median(homeMs) <= GOALS.launchMs,
    },
    bundle: bundle && {
      ...bundle,
      goalGzipBytes: GOALS.gzipBytes,
      met: bundle.gzipBytes.total <= GOALS.gzipBytes,
    },
    idleWithWindow: windowIdle && {
      seconds: idleSeconds,
      ...windowIdle,
      goalPercent: GOALS.idleCpuPercent,
      metByApp: (windowIdle.app.cpuPercent ?? Infinity) <= GOALS.idleCpuPercent,
      metWithHelpers: (windowIdle.totalPercent ?? Infinity) <= GOALS.idleCpuPercent,
    },
    idleNoWindow: noWindowIdle && {
      seconds: idleSeconds,
      ...noWindowIdle,
      goalPercent: GOALS.idleCpuPercent,
      met: (noWindowIdle.totalPercent ?? Infinity) <= GOALS.idleCpuPercent,
    },
    errors,
  };
  console.log(JSON.stringify(figures));

  const ok = (b: boolean | undefined | null) => b ? "✓" : "✗";
  const parts: string[] = [];
  const lh = figures.launchToHome;
  parts.push(
    homeMs.length
      ? `launch→Home ${homeMs.join("/")} ms, median ${lh.medianMs} ms (±${resolutionMs} ms) ${
        ok(lh.met)
      } ≤ ${GOALS.launchMs}`
      : "launch→Home FAILED",
  );
  parts.push(
    bundle
      ? `UI gzip ${(bundle.gzipBytes.total / 1024).toFixed(1)} KB ${
        ok(figures.bundle!.met)
      } ≤ 100 KB`
      : "UI gzip FAILED",
  );
  if (windowIdle) {
    const helpers = windowIdle.helpers.map((h) => `${h.name} ${h.cpuPercent ?? "?"}`).join(", ");
    parts.push(
      `idle CPU window app ${windowIdle.app.cpuPercent} % ${
        ok(figures.idleWithWindow!.metByApp)
      } ≤ 2, with WebKit ${windowIdle.totalPercent} % ${
        ok(figures.idleWithWindow!.metWithHelpers)
      }${helpers ? ` (${helpers})` : ""}`,
    );
  } else parts.push("idle CPU window FAILED");
  if (headless) {
    parts.push(
      noWindowIdle
        ? `--no-window ${noWindowIdle.totalPercent} % ${ok(figures.idleNoWindow!.met)}`
        : "--no-window FAILED",
    );
  }
  console.log(`bench:app: ${parts.join("; ")}`);
  return errors.length ? 1 : 0;
}

if (import.meta.main) {
  const onSignal = () => {
    log("interrupted: stopping everything started …");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let code = 1;
  try {
    code = await main();
  } catch (e) {
    console.error(`[bench:app] ${(e as Error).message}`);
  } finally {
    await cleanup();
  }
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  Deno.exit(code);
}

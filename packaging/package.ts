/**
 * Installers from the compiled program:
 *
 *   deno task package --target T [--bin dist/phaselock-T] [--out dist/] [--layout-only]
 *
 * assembles what the installer is made from in OUT/package-T/ — the AppDir (Linux), the .app
 * (macOS) or the .wxs sources and their files (Windows) — and then, when the OS's tool is on
 * PATH, builds OUT/PhaseLock-<VERSION>-x86_64.AppImage (appimagetool), OUT/PhaseLock-<VERSION>-
 * <arm64|x64>.dmg (codesign, hdiutil; notarised when the Apple secrets are set) or
 * OUT/PhaseLock-<VERSION>-x64.msi (wix, or Debian's wixl). A missing tool is said in one sentence
 * and the exit code is 1; `--layout-only` stops after the assembly (what the tests use).
 */
import { dirname, resolve } from "node:path";
import { VERSION } from "../app/version.ts";
import { ICO_FILE } from "./icons.ts";
import { buildAppDir } from "./linux/appdir.ts";
import { buildAppBundle, ENTITLEMENTS } from "./macos/bundle.ts";
import { installerSource, renderWixl, renderWixV4 } from "./windows/installer.ts";
import { type Target, TARGETS } from "./manifest.ts";

export { type Target, TARGETS };

/** The installer file's name for a target. */
export function installerName(target: Target): string {
  const { os, arch } = TARGETS[target];
  const ext = { linux: "AppImage", macos: "dmg", windows: "msi" }[os];
  return `PhaseLock-${VERSION}-${arch}.${ext}`;
}

class PackageError extends Error {}

interface Job {
  target: Target;
  bin: string;
  /** OUT/package-T: the layout. */
  stage: string;
  /** OUT/PhaseLock-…: the installer. */
  installer: string;
  layoutOnly: boolean;
}

/** The full path of `name` on PATH (with Windows' executable extensions), or null. */
export function which(name: string): string | null {
  const win = Deno.build.os === "windows";
  const exts = win ? ["", ".exe", ".cmd", ".bat"] : [""];
  for (const dir of (Deno.env.get("PATH") ?? "").split(win ? ";" : ":")) {
    for (const ext of exts) {
      const p = `${dir}${win ? "\\" : "/"}${name}${ext}`;
      try {
        if (dir && Deno.statSync(p).isFile) return p;
      } catch { /* not here */ }
    }
  }
  return null;
}

/** Runs a tool with its output shown; a failure becomes one sentence. */
async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<void> {
  console.error(`$ ${[cmd, ...args].join(" ")}`);
  const { code } = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new PackageError(`${cmd} ${args[0]} failed with exit code ${code}.`);
}

function need(tool: string, what: string, built: string, hint: string): string {
  const path = which(tool);
  if (!path) {
    throw new PackageError(
      `${tool} is not on PATH, so the ${what} cannot be built here (${built} is ready; ${hint}, ` +
        `or pass --layout-only).`,
    );
  }
  return path;
}

async function linux(job: Job): Promise<void> {
  const appDir = `${job.stage}/PhaseLock.AppDir`;
  await buildAppDir(job.bin, appDir);
  console.log(`AppDir: ${appDir}`);
  if (job.layoutOnly) return;
  const tool = need(
    "appimagetool",
    "AppImage",
    appDir,
    "get it from https://github.com/AppImage/appimagetool/releases",
  );
  // APPIMAGE_EXTRACT_AND_RUN: appimagetool is itself an AppImage; this way it needs no FUSE.
  await run(tool, [appDir, job.installer], {
    env: { ARCH: TARGETS[job.target].arch, APPIMAGE_EXTRACT_AND_RUN: "1" },
  });
}

async function macos(job: Job): Promise<void> {
  await Deno.remove(job.stage, { recursive: true }).catch(() => {});
  await Deno.mkdir(job.stage, { recursive: true });
  const app = `${job.stage}/PhaseLock.app`;
  await buildAppBundle(job.bin, app);
  console.log(`App bundle: ${app}`);
  if (job.layoutOnly) return;
  if (Deno.build.os !== "darwin") {
    throw new PackageError(
      `The .dmg is built only on macOS (codesign and hdiutil); ${app} is ready (or pass --layout-only).`,
    );
  }
  const hint = "they come with macOS and its command-line tools";
  need("hdiutil", "disk image", app, hint);
  need("codesign", "disk image", app, hint);
  await run("plutil", ["-lint", `${app}/Contents/Info.plist`]);

  // A Developer ID from the keychain when the release has one (MACOS_SIGN_IDENTITY), else an
  // ad-hoc signature, which Apple silicon needs to run the program at all.
  const identity = Deno.env.get("MACOS_SIGN_IDENTITY") || "-";
  const entitlements = ENTITLEMENTS.pathname;
  await run("codesign", [
    ...["--force", "--options", "runtime", "--entitlements", entitlements, "--sign", identity],
    ...(identity === "-" ? [] : ["--timestamp"]),
    app,
  ]);
  await run("codesign", ["--verify", "--strict", "--verbose=2", app]);

  // The window of the mounted image: the app and a link to drag it onto.
  await Deno.symlink("/Applications", `${job.stage}/Applications`);
  await Deno.remove(job.installer).catch(() => {});
  // hdiutil now and then fails with "Resource busy" on CI machines; a second try succeeds.
  for (let attempt = 1;; attempt++) {
    try {
      await run("hdiutil", [
        ...["create", "-volname", "PhaseLock", "-srcfolder", job.stage],
        ...["-ov", "-format", "UDZO", job.installer],
      ]);
      break;
    } catch (e) {
      if (attempt === 3) throw e;
      await new Promise((r) => setTimeout(r, 5000));
    }
  }

  const [appleId, team, password] = ["APPLE_ID", "APPLE_TEAM_ID", "APPLE_APP_PASSWORD"].map((k) =>
    Deno.env.get(k)
  );
  if (identity !== "-" && appleId && team && password) {
    await run("codesign", ["--force", "--sign", identity, "--timestamp", job.installer]);
    await run("xcrun", [
      ...["notarytool", "submit", job.installer, "--apple-id", appleId, "--team-id", team],
      ...["--password", password, "--wait"],
    ]);
    await run("xcrun", ["stapler", "staple", job.installer]);
  } else {
    console.error(
      "Not notarised (no MACOS_SIGN_IDENTITY, APPLE_ID, APPLE_TEAM_ID and APPLE_APP_PASSWORD): " +
        "macOS will ask users to open it from the context menu the first time.",
    );
  }
}

async function windows(job: Job): Promise<void> {
  await Deno.remove(job.stage, { recursive: true }).catch(() => {});
  await Deno.mkdir(job.stage, { recursive: true });
  await Deno.copyFile(job.bin, `${job.stage}/phaselock.exe`);
  await Deno.copyFile(ICO_FILE, `${job.stage}/phaselock.ico`);
  // Sources relative to the stage: the builders run there.
  const source = installerSource("phaselock.exe", "phaselock.ico");
  await Deno.writeTextFile(`${job.stage}/phaselock.wxs`, renderWixV4(source));
  await Deno.writeTextFile(`${job.stage}/phaselock-wixl.wxs`, renderWixl(source));
  console.log(`Installer sources: ${job.stage}/phaselock.wxs (WiX v4), phaselock-wixl.wxs (wixl)`);
  if (job.layoutOnly) return;
  const installer = resolve(job.installer);
  if (which("wix")) {
    await run("wix", ["build", "-arch", "x64", "-o", installer, "phaselock.wxs"], {
      cwd: job.stage,
    });
  } else if (which("wixl")) {
    console.error("wix is not on PATH: building the MSI with msitools' wixl instead.");
    await run("wixl", ["-a", "x64", "-o", installer, "phaselock-wixl.wxs"], { cwd: job.stage });
  } else {
    need("wix", "MSI", job.stage, "install it with `dotnet tool install --global wix`");
  }
}

/** Parses the command line; throws PackageError with one sentence when it is wrong. */
export function parseArgs(args: string[]): Job {
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]);
    if (!m) throw new PackageError(`Unexpected argument "${args[i]}".`);
    if (m[1] === "layout-only") flags[m[1]] = true;
    else if (["target", "bin", "out"].includes(m[1])) {
      const v = m[2] ?? args[++i];
      if (v === undefined) throw new PackageError(`--${m[1]} needs a value.`);
      flags[m[1]] = v;
    } else throw new PackageError(`Unknown option --${m[1]}.`);
  }
  const target = (flags.target ?? "") as Target;
  if (!(target in TARGETS)) {
    throw new PackageError(`--target must be one of ${Object.keys(TARGETS).join(", ")}.`);
  }
  const out = ((flags.out as string | undefined) ?? "dist").replace(/[/\\]+$/, "") || ".";
  const exe = TARGETS[target].os === "windows" ? ".exe" : "";
  return {
    target,
    bin: (flags.bin as string | undefined) ?? `${out}/phaselock-${target}${exe}`,
    stage: `${out}/package-${target}`,
    installer: `${out}/${installerName(target)}`,
    layoutOnly: flags["layout-only"] === true,
  };
}

/** Packages one target; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  try {
    const job = parseArgs(args);
    try {
      if (!Deno.statSync(job.bin).isFile) throw new Error();
    } catch {
      throw new PackageError(
        `No program at ${job.bin}: build it first with "deno task compile --target ${job.target}".`,
      );
    }
    await Deno.mkdir(dirname(job.stage), { recursive: true });
    await { linux, macos, windows }[TARGETS[job.target].os](job);
    if (!job.layoutOnly) {
      const mb = (Deno.statSync(job.installer).size / 1e6).toFixed(1);
      console.log(`Installer: ${job.installer} (${mb} MB)`);
    }
    return 0;
  } catch (e) {
    if (!(e instanceof PackageError)) throw e;
    console.error(e.message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

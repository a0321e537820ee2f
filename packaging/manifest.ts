/**
 * What goes into the binary. `deno compile` embeds the module graph of `main.ts` by itself;
 * this module names the rest and what to leave out:
 *
 * - RUNTIME_FILES: files the app reads at run time rather than imports — the UI pages and
 *   bundles, the demo track, the audio and decode Workers (a Worker is an entry point of its own).
 * - npm packages: with a `node_modules` folder `deno compile` would embed every package in it
 *   (the test browsers' drivers alone are 30 MB); only the packages reachable from the
 *   entry points go in, found from `deno info --json`.
 * - The window library ships a native addon for ten platforms (65 MB); only the target's goes in.
 *
 * `stageTree()` copies exactly this file set into a folder, so that a test can run the app
 * from it with `deno run` and prove nothing it needs is missing — the part of `deno compile`
 * that cannot run on a machine without the Deno runtime download.
 */

import { filePath } from "../app/ui_assets.ts";

/** Repository-relative files read at run time (each resolved from `import.meta.url`). */
export const RUNTIME_FILES = [
  "ui/index.html",
  "ui/peer.html",
  "ui/swarm.html",
  "ui/styles.css",
  "ui/dist/app.js",
  "ui/dist/peer.js",
  "ui/dist/swarm.js",
  "ui/dist/decode_worker.js",
  "assets/demo.mp3",
  "audio/output_worker.ts",
  "audio/decode_job.ts",
] as const;

/** The program's entry points: the main module and the Workers it starts by URL. */
export const ENTRY_POINTS = ["main.ts", "audio/output_worker.ts", "audio/decode_job.ts"] as const;

/**
 * The targets we build: the window library's addon name, the executable's suffix, and the OS
 * and architecture the installer is named for.
 */
export const TARGETS = {
  "x86_64-unknown-linux-gnu": { addon: "linux-x64-gnu", exe: "", os: "linux", arch: "x86_64" },
  "aarch64-apple-darwin": { addon: "darwin-arm64", exe: "", os: "macos", arch: "arm64" },
  "x86_64-apple-darwin": { addon: "darwin-x64", exe: "", os: "macos", arch: "x64" },
  "x86_64-pc-windows-msvc": { addon: "win32-x64-msvc", exe: ".exe", os: "windows", arch: "x64" },
} as const;
export type Target = keyof typeof TARGETS;

export function isTarget(t: string): t is Target {
  return Object.hasOwn(TARGETS, t);
}

/** The target this machine runs, when it is one we build. */
export function hostTarget(): Target | null {
  return isTarget(Deno.build.target) ? Deno.build.target : null;
}

export const ROOT = new URL("../", import.meta.url);
/** The repository as a URL path (for comparing module specifiers) and as an OS path. */
const rootUrlPath = decodeURIComponent(ROOT.pathname);
const rootPath = filePath(ROOT);
/** A repository-relative path as a URL (Deno's file APIs take URLs on every OS). */
const at = (rel: string) => new URL(rel, ROOT);

interface DenoInfo {
  modules: { specifier: string; kind?: string; npmPackage?: string }[];
  npmPackages: Record<string, { dependencies: string[]; localPath?: string }>;
}

async function denoInfo(entry: string): Promise<DenoInfo> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: rootPath,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `deno info ${entry} failed: ${new TextDecoder().decode(out.stderr).trim().slice(-500)}`,
    );
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The entry points' own modules (repository-relative) and their npm packages' folders. */
export interface Graph {
  /** Local modules, repository-relative, sorted. */
  modules: string[];
  /** Folders under `node_modules/.deno/` of every npm package reachable, sorted. */
  npmFolders: string[];
  /** Top-level package names the modules import (`node_modules/<name>` links). */
  npmRoots: string[];
}

export async function moduleGraph(): Promise<Graph> {
  const modules = new Set<string>();
  const folders = new Set<string>();
  const roots = new Set<string>();
  for (const entry of ENTRY_POINTS) {
    const info = await denoInfo(entry);
    const seen = new Set<string>();
    const visit = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      const pkg = info.npmPackages[id];
      if (!pkg) throw new Error(`deno info names npm package ${id} but does not describe it`);
      const m = pkg.localPath?.replaceAll("\\", "/").match(/node_modules\/\.deno\/([^/]+)\//);
      if (!m) throw new Error(`npm package ${id} has no folder under node_modules/.deno`);
      folders.add(m[1]);
      pkg.dependencies.forEach(visit);
    };
    for (const mod of info.modules) {
      if (mod.specifier.startsWith("file://")) {
        const path = decodeURIComponent(new URL(mod.specifier).pathname);
        if (!path.startsWith(rootUrlPath)) throw new Error(`${path} is outside the repository`);
        modules.add(path.slice(rootUrlPath.length));
      } else if (mod.npmPackage) {
        visit(mod.npmPackage);
        roots.add(npmName(mod.npmPackage));
      }
    }
  }
  return {
    modules: [...modules].sort(),
    npmFolders: [...folders].sort(),
    npmRoots: [...roots].sort(),
  };
}

/** `@scope+name@1.2.3` (a folder under node_modules/.deno) → `@scope/name`. */
function folderName(folder: string): string {
  return npmName(folder).replace("+", "/");
}

/** `@scope/name@1.2.3_peer@4` → `@scope/name`. */
function npmName(id: string): string {
  return id.slice(0, id.indexOf("@", 1));
}

const WEBVIEW = "node_modules/.deno/webview-napi@2.2.0/node_modules/webview-napi";

async function list(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(at(dir))) out.push(e);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Everything under `node_modules` the binary must not carry, by exact path: packages no entry
 * point reaches, the links to them, and the window library's addons for other platforms.
 */
export async function excludes(target: Target, graph: Graph): Promise<string[]> {
  const out: string[] = ["node_modules/.bin"];
  for (const e of await list("node_modules/.deno")) {
    if (e.isDirectory && e.name !== "node_modules" && !graph.npmFolders.includes(e.name)) {
      out.push(`node_modules/.deno/${e.name}`);
    }
  }
  // Links to packages, at the top and in the hoisting folder (deno compile follows links).
  const reached = new Set(graph.npmFolders.map(folderName));
  for (const [dir, keep] of [["node_modules", graph.npmRoots], [".deno/node_modules", reached]]) {
    for (const e of await list(dir === "node_modules" ? dir : `node_modules/${dir}`)) {
      if (e.name.startsWith(".")) continue;
      const base = dir === "node_modules" ? dir : `node_modules/${dir}`;
      const names = e.name.startsWith("@")
        ? (await list(`${base}/${e.name}`)).map((s) => `${e.name}/${s.name}`)
        : [e.name];
      for (const name of names) {
        if (![...keep].includes(name)) out.push(`${base}/${name}`);
      }
    }
  }
  const addon = `webview-napi.${TARGETS[target].addon}.node`;
  let found = false;
  for (const e of await list(WEBVIEW)) {
    if (!e.name.endsWith(".node")) continue;
    if (e.name === addon) found = true;
    else out.push(`${WEBVIEW}/${e.name}`);
  }
  if (!found) throw new Error(`The window library has no addon for ${target} (${addon}).`);
  return out;
}

/** The `deno compile` arguments for `target`, writing `output`. */
export async function compileArgs(
  target: Target,
  output: string,
  opts: { icon?: string } = {},
): Promise<string[]> {
  const graph = await moduleGraph();
  return [
    "compile",
    "--allow-all",
    "--target",
    target,
    "--output",
    output,
    ...RUNTIME_FILES.flatMap((f) => ["--include", f]),
    ...(await excludes(target, graph)).flatMap((f) => ["--exclude", f]),
    ...(opts.icon && TARGETS[target].exe ? ["--icon", opts.icon] : []),
    "main.ts",
  ];
}

/**
 * Copies what the binary for this machine's target would carry into `dest`: the local
 * modules, RUNTIME_FILES, the reachable npm packages with only this target's addon, and a
 * `deno.json` that forbids installing anything (`nodeModulesDir: manual`). Returns the
 * number of files copied.
 */
export async function stageTree(dest: string, target: Target): Promise<number> {
  const graph = await moduleGraph();
  const skip = new Set(await excludes(target, graph));
  let count = 0;
  const copy = async (rel: string) => {
    if (skip.has(rel)) return;
    const from = at(rel);
    const to = `${dest}/${rel}`;
    const st = await Deno.lstat(from);
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    if (st.isSymlink) {
      await Deno.symlink(await Deno.readLink(from), to);
    } else if (st.isDirectory) {
      await Deno.mkdir(to, { recursive: true });
      for await (const e of Deno.readDir(from)) await copy(`${rel}/${e.name}`);
    } else {
      await Deno.copyFile(from, to);
      count++;
    }
  };
  for (const f of [...graph.modules, ...RUNTIME_FILES]) await copy(f);
  for (const folder of graph.npmFolders) await copy(`node_modules/.deno/${folder}`);
  for (const name of graph.npmRoots) await copy(`node_modules/${name}`);
  await copy("node_modules/.deno/node_modules"); // the hoisting links, as the binary has them
  const config = JSON.parse(await Deno.readTextFile(at("deno.json")));
  config.nodeModulesDir = "manual";
  delete config.tasks;
  await Deno.writeTextFile(`${dest}/deno.json`, JSON.stringify(config, null, 2));
  await Deno.copyFile(at("deno.lock"), `${dest}/deno.lock`);
  return count + 2;
}

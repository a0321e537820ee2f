/**
 * The UI's files: `ui/index.html`, `ui/styles.css` and the bundle `ui/dist/app.js`. From a
 * source checkout the bundle is rebuilt (with `deno bundle`) whenever a UI source is newer than
 * it, so `deno task start` on a fresh clone builds what it serves; a compiled binary carries a
 * built bundle and never rebuilds.
 *
 *   deno run -A app/ui_assets.ts   builds the bundle and prints its size
 */
import type { UiAssets } from "../server/control.ts";

const UI_DIR = new URL("../ui/", import.meta.url);
const BUNDLE = new URL("dist/app.js", UI_DIR);
const ENTRY = new URL("main.tsx", UI_DIR);

/** A file URL as a path of this OS (spaces and other escapes decoded; drive letters on Windows). */
export function filePath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  return Deno.build.os === "windows"
    ? path.replace(/^\/([A-Za-z]:)/, "$1").replaceAll("/", "\\")
    : path;
}

async function mtime(url: URL): Promise<number> {
  try {
    return (await Deno.stat(url)).mtime?.getTime() ?? 0;
  } catch {
    return 0;
  }
}

/** Newest modification time of the UI sources (and the shared modules they import). */
async function newestSource(): Promise<number> {
  let newest = 0;
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.name === "dist" || e.name.endsWith("_test.ts")) continue;
      const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
      if (e.isDirectory) await walk(u);
      else if (/\.(tsx?|css|html)$/.test(e.name)) newest = Math.max(newest, await mtime(u));
    }
  };
  await walk(UI_DIR);
  for (const shared of ["../session/commands.ts", "../session/protocol.ts"]) {
    newest = Math.max(newest, await mtime(new URL(shared, import.meta.url)));
  }
  return newest;
}

/** True when running from a source checkout where `deno bundle` can rebuild the UI. */
async function canBuild(): Promise<boolean> {
  return ENTRY.protocol === "file:" && (await mtime(ENTRY)) > 0 &&
    /deno(\.exe)?$/.test(Deno.execPath());
}

/** Builds `ui/dist/app.js` if a source is newer than it. Throws with the bundler's words. */
export async function ensureBundle(opts: { force?: boolean } = {}): Promise<void> {
  if (!(await canBuild())) return;
  if (!opts.force && (await mtime(BUNDLE)) >= (await newestSource())) return;
  // Built beside and renamed into place: two apps starting at once never read half a bundle.
  const tmp = `${filePath(BUNDLE)}.${Deno.pid}.tmp`;
  await Deno.mkdir(new URL(".", BUNDLE), { recursive: true });
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--minify",
      "--config",
      filePath(new URL("../deno.json", import.meta.url)),
      "-o",
      tmp,
      filePath(ENTRY),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-6).join("\n");
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot build the UI: ${why}`);
  }
  await Deno.rename(tmp, BUNDLE);
}

/** Reads the UI's files once; `ensureBundle()` first. */
export async function loadUiAssets(): Promise<UiAssets> {
  const [html, css, js] = await Promise.all([
    Deno.readTextFile(new URL("index.html", UI_DIR)),
    Deno.readTextFile(new URL("styles.css", UI_DIR)),
    Deno.readTextFile(BUNDLE),
  ]);
  return { html, css, js };
}

if (import.meta.main) {
  const t0 = performance.now();
  await ensureBundle({ force: true });
  const a = await loadUiAssets();
  const gz = async (s: string) =>
    (await new Response(
      new Blob([s]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer()).byteLength;
  const js = await gz(a.js), css = await gz(a.css), html = await gz(a.html);
  const figures = {
    buildMs: Math.round(performance.now() - t0),
    jsBytes: a.js.length,
    gzipBytes: { js, css, html, total: js + css + html },
  };
  console.log(JSON.stringify(figures));
  console.log(
    `UI bundle: ${(a.js.length / 1024).toFixed(1)} KB JS; gzip total ${
      ((js + css + html) / 1024).toFixed(1)
    } KB (goal ≤ 100 KB); built in ${figures.buildMs} ms`,
  );
}

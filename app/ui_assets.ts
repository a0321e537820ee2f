/**
 * The UI's files: the app page (`ui/index.html`, `ui/styles.css`, bundle `ui/dist/app.js`),
 * the browser peer's page (`ui/peer.html`, the same stylesheet, `ui/dist/peer.js` and its
 * decoder `ui/dist/decode_worker.js`) and the swarm page (`ui/swarm.html`, the same stylesheet
 * and decoder, `ui/dist/swarm.js`). From a source checkout a bundle is rebuilt (with
 * `deno bundle`) whenever a source it may import is newer than it, so `deno task start` on a
 * fresh clone builds what it serves; a compiled binary carries built bundles and never rebuilds.
 *
 *   deno run -A app/ui_assets.ts   builds every bundle and prints their sizes
 */
import type { UiAssets } from "../server/control.ts";
import type { PeerPageAssets } from "../server/http.ts";
import type { SwarmPageAssets } from "../swarm/server.ts";

const ROOT = new URL("../", import.meta.url);
const UI_DIR = new URL("ui/", ROOT);
const DIST = new URL("dist/", UI_DIR);

/** The browser bundles: entry module and output file. */
const BUNDLES = {
  app: { entry: new URL("main.tsx", UI_DIR), out: new URL("app.js", DIST) },
  peer: { entry: new URL("peer_main.tsx", UI_DIR), out: new URL("peer.js", DIST) },
  swarm: { entry: new URL("swarm_main.tsx", UI_DIR), out: new URL("swarm.js", DIST) },
  decodeWorker: {
    entry: new URL("engine/decode_worker.ts", UI_DIR),
    out: new URL("decode_worker.js", DIST),
  },
} as const;
export type BundleName = keyof typeof BUNDLES;

/**
 * Folders whose modules the bundles import (the browser engine runs the native player, clock
 * filter, decoder and protocol unchanged), walked whole: a few dozen `stat` calls cost less
 * than asking `deno info` for the exact graph at every launch.
 */
const SOURCE_DIRS = ["ui/", "audio/", "net/", "session/", "swarm/"];

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

/** Newest modification time of the bundles' sources (and of deno.json: the npm versions). */
async function newestSource(): Promise<number> {
  let newest = await mtime(new URL("deno.json", ROOT));
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.name === "dist" || /_test\.tsx?$/.test(e.name)) continue;
      const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
      if (e.isDirectory) await walk(u);
      else if (/\.(tsx?|css|html)$/.test(e.name)) newest = Math.max(newest, await mtime(u));
    }
  };
  await Promise.all(SOURCE_DIRS.map((d) => walk(new URL(d, ROOT)).catch(() => {})));
  return newest;
}

/** True when running from a source checkout where `deno bundle` can rebuild the UI. */
async function canBuild(): Promise<boolean> {
  return UI_DIR.protocol === "file:" && (await mtime(BUNDLES.app.entry)) > 0 &&
    /deno(\.exe)?$/.test(Deno.execPath());
}

/** Bundles one entry for the browser. Throws with the bundler's words. */
async function build(name: BundleName): Promise<void> {
  const { entry, out } = BUNDLES[name];
  // Built beside and renamed into place: two apps starting at once never read half a bundle.
  const tmp = `${filePath(out)}.${Deno.pid}.tmp`;
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--minify",
      "--config",
      filePath(new URL("deno.json", ROOT)),
      "-o",
      tmp,
      filePath(entry),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    const why = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-6).join("\n");
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot build the UI (${out.pathname.split("/").pop()}): ${why}`);
  }
  await Deno.rename(tmp, out);
}

/**
 * Builds each of `ui/dist/{app,peer,swarm,decode_worker}.js` (or the `only` ones) that is older
 * than a source, side by side (app, peer and decoder took 200 ms in parallel here, 280 ms one
 * after another).
 * Throws with the bundler's words.
 */
export async function ensureBundle(
  opts: { force?: boolean; only?: BundleName[] } = {},
): Promise<void> {
  if (!(await canBuild())) return;
  const newest = opts.force ? Infinity : await newestSource();
  const stale: BundleName[] = [];
  await Promise.all((opts.only ?? Object.keys(BUNDLES) as BundleName[]).map(async (name) => {
    if ((await mtime(BUNDLES[name].out)) < newest) stale.push(name);
  }));
  if (stale.length === 0) return;
  await Deno.mkdir(DIST, { recursive: true });
  const results = await Promise.allSettled(stale.map(build));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** Reads the UI's files once; `ensureBundle()` first. */
export async function loadUiAssets(): Promise<UiAssets> {
  const [html, css, js] = await Promise.all([
    Deno.readTextFile(new URL("index.html", UI_DIR)),
    Deno.readTextFile(new URL("styles.css", UI_DIR)),
    Deno.readTextFile(BUNDLES.app.out),
  ]);
  return { html, css, js };
}

/**
 * Reads the browser peer's page, style, engine and decode worker (`ensureBundle()` first).
 * Throws with a sentence when the bundles were never built.
 */
export async function loadPeerAssets(): Promise<PeerPageAssets> {
  const read = (u: URL) =>
    Deno.readTextFile(u).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(
        `The browser peer's page is not built (${filePath(u)} is missing): ` +
          `run "deno task build:ui".`,
      );
    });
  const [html, css, js, worker] = await Promise.all([
    read(new URL("peer.html", UI_DIR)),
    read(new URL("styles.css", UI_DIR)),
    read(BUNDLES.peer.out),
    read(BUNDLES.decodeWorker.out),
  ]);
  return { html, css, js, worker };
}

/**
 * Reads the swarm page, style, engine and decode worker (`ensureBundle({ only: ["swarm",
 * "decodeWorker"] })` first). Throws with a sentence when the bundles were never built.
 */
export async function loadSwarmAssets(): Promise<SwarmPageAssets> {
  const read = (u: URL) =>
    Deno.readTextFile(u).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(
        `The swarm page is not built (${filePath(u)} is missing): run "deno task build:ui".`,
      );
    });
  const [html, css, js, worker] = await Promise.all([
    read(new URL("swarm.html", UI_DIR)),
    read(new URL("styles.css", UI_DIR)),
    read(BUNDLES.swarm.out),
    read(BUNDLES.decodeWorker.out),
  ]);
  return { html, css, js, worker };
}

if (import.meta.main) {
  const t0 = performance.now();
  await ensureBundle({ force: true });
  const buildMs = Math.round(performance.now() - t0);
  const [app, peer, swarm] = await Promise.all([
    loadUiAssets(),
    loadPeerAssets(),
    loadSwarmAssets(),
  ]);
  const gz = async (s: string) =>
    (await new Response(
      new Blob([s]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer()).byteLength;
  const bytes = (s: string) => new TextEncoder().encode(s).length; // the WASM text is not ASCII
  const [js, css, html, peerJs, worker, peerHtml, swarmJs, swarmHtml] = await Promise.all(
    [app.js, app.css, app.html, peer.js, peer.worker, peer.html, swarm.js, swarm.html].map(gz),
  );
  const figures = {
    buildMs,
    // The app page, as before: bench/app.ts reads these.
    jsBytes: bytes(app.js),
    gzipBytes: { js, css, html, total: js + css + html },
    bundles: {
      app: { bytes: bytes(app.js), gzipBytes: js },
      peer: { bytes: bytes(peer.js), gzipBytes: peerJs },
      swarm: { bytes: bytes(swarm.js), gzipBytes: swarmJs },
      decodeWorker: { bytes: bytes(peer.worker), gzipBytes: worker },
    },
    /** What a phone downloads to join: page, style, engine and decode worker. */
    peerPageGzipBytes: peerJs + worker + css + peerHtml,
    /** What a browser downloads to join a swarm: page, style, engine and decode worker. */
    swarmPageGzipBytes: swarmJs + worker + css + swarmHtml,
  };
  console.log(JSON.stringify(figures));
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  console.log(
    `UI bundles (gzip): app ${kb(js)}, peer ${kb(peerJs)}, swarm ${kb(swarmJs)}, ` +
      `decode worker ${kb(worker)}; app page ${kb(figures.gzipBytes.total)} (goal ≤ 100 KB), ` +
      `peer page ${kb(figures.peerPageGzipBytes)}, swarm page ${
        kb(figures.swarmPageGzipBytes)
      }; built in ${buildMs} ms`,
  );
}

/**
 * The browser peer's decode worker in a real browser: Debian's Chromium loads the built
 * `ui/dist/decode_worker.js` from the jam server's own routes (so under the page's real
 * Content-Security-Policy), decodes the demo track, and must give exactly the native int16
 * decode; broken files must end in a sentence, not a hang.
 */
import { ensureBundle, filePath } from "../app/ui_assets.ts";
import { decodeMp3 } from "../audio/decode.ts";
import { makeDemo } from "../assets/make_demo.ts";
import type { DecodeReply } from "../ui/engine/decode_messages.ts";
import { assertEquals, assertTrue } from "./assert.ts";
import { launchChromium, type LaunchedChromium } from "./harness/browser.ts";
import { createApp } from "../server/http.ts";

const WORKER_JS = new URL("../ui/dist/decode_worker.js", import.meta.url);

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Decode worker</title><link rel="icon" href="data:,"></head>
<body><script type="module" src="/peer.js"></script></body>
</html>`;

/**
 * The page's script (served as the engine, `/peer.js`: the policy allows no inline script).
 * `decodeAll(workerUrl, files)` fetches each file, posts them all at once to a new worker (then
 * cancels those marked `cancel`) and collects every reply, with the samples as base64 (Playwright returns JSON) and the time from
 * posting to `done`/`error`.
 */
const DRIVER = `
const b64 = (a) => {
  const u8 = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let s = "";
  for (let i = 0; i < u8.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  }
  return btoa(s);
};
globalThis.decodeAll = async (workerUrl, files) => {
  const worker = new Worker(workerUrl, { type: "module" });
  const replies = [];
  const bodies = await Promise.all(files.map((f) => fetch(f.url).then((r) => r.arrayBuffer())));
  const t0 = performance.now();
  const done = new Promise((resolve) => {
    let left = files.filter((f) => !f.cancel).length;
    worker.onerror = (e) => {
      replies.push({ type: "workererror", message: String(e.message) });
      resolve();
    };
    worker.onmessage = (ev) => {
      const m = ev.data;
      // Stamped now, encoded for Playwright after the last reply: the next decode's time must
      // not include this page's base64 work.
      replies.push({ ...m, ms: performance.now() - t0 });
      if (m.type !== "progress" && --left === 0) resolve();
    };
  });
  files.forEach((f, i) =>
    worker.postMessage({ type: "decode", id: f.id, fileName: f.fileName, bytes: bodies[i] }, [
      bodies[i],
    ])
  );
  for (const f of files) if (f.cancel) worker.postMessage({ type: "cancel", id: f.id });
  await done;
  worker.terminate();
  return replies.map((m) => m.type !== "done" ? m : {
    type: "done", id: m.id, rateHz: m.rateHz, durationSec: m.durationSec, ms: m.ms,
    frames: [m.left.length, m.right.length],
    ownBuffers: m.left.buffer !== m.right.buffer,
    left: b64(m.left), right: b64(m.right),
  });
};
`;

type Reply =
  | Exclude<DecodeReply, { type: "done" }> & { ms?: number }
  | {
    type: "done";
    id: string;
    rateHz: number;
    durationSec: number;
    ms: number;
    frames: [number, number];
    ownBuffers: boolean;
    left: string;
    right: string;
  }
  | { type: "workererror"; message: string };

function int16FromBase64(s: string): Int16Array {
  const bin = atob(s);
  const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return new Int16Array(u8.buffer); // little-endian on both sides (x86)
}

/** The committed demo track, or one made now (in a temp folder) if it is missing. */
async function demoBytes(): Promise<Uint8Array> {
  try {
    return await Deno.readFile(new URL("../assets/demo.mp3", import.meta.url));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    const dir = await Deno.makeTempDir({ prefix: "phaselock-decode-worker-" });
    try {
      await makeDemo(`${dir}/demo.mp3`);
      return await Deno.readFile(`${dir}/demo.mp3`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}

function randomBytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  return b;
}

Deno.test({
  name: "the decode worker in Chromium decodes the demo exactly as natively, and refuses " +
    "broken files with a sentence",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await ensureBundle({ only: ["decodeWorker"] });
    const worker = await Deno.readTextFile(WORKER_JS).catch(() => {
      throw new Error(`${filePath(WORKER_JS)} is missing: run "deno task build:ui"`);
    });
    const demo = await demoBytes();
    const files: Record<string, Uint8Array> = {
      "/demo.mp3": demo,
      "/random.mp3": randomBytes(64 * 1024, 7),
      // Cut at 60 %: inside an audio frame, so the frame scan must say so.
      "/truncated.mp3": demo.subarray(0, Math.floor(demo.length * 0.6)),
      "/empty.mp3": new Uint8Array(),
    };
    // The jam server's routes serve the page (this file's PAGE and DRIVER in place of the
    // peer's) and the worker with the headers a phone gets.
    const jam = createApp({
      peerPage: () => Promise.resolve({ html: PAGE, css: "", js: DRIVER, worker }),
      trackPath: () => undefined,
      cover: () => undefined,
      upload: () => Promise.resolve({ status: 404, text: "No uploads here." }),
      onSocket: () => ({ onMessage() {}, onClose() {}, admitted: () => false }),
    });
    const pageCsp = (await jam.request("/")).headers.get("content-security-policy");
    assertTrue(pageCsp, "the jam server sends the peer page with a Content-Security-Policy");
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/strict/decode_worker.js") {
        // The page's policy on the worker script too: it forbids compiling WebAssembly.
        return new Response(worker, {
          headers: { "content-type": "text/javascript", "content-security-policy": pageCsp },
        });
      }
      const file = files[path];
      if (file) {
        return new Response(new Uint8Array(file), { headers: { "content-type": "audio/mpeg" } });
      }
      return jam.fetch(req);
    });
    let chrome: LaunchedChromium | undefined;
    try {
      chrome = await launchChromium();
      const page = await chrome.page(`http://127.0.0.1:${server.addr.port}/`);
      await page.waitForFunction(() => "decodeAll" in globalThis, null, { timeout: 10_000 });
      const ask: { id: string; url: string; fileName: string; cancel?: boolean }[] = [
        { id: "demo-cold", url: "/demo.mp3", fileName: "demo.mp3" },
        { id: "demo-warm", url: "/demo.mp3", fileName: "demo.mp3" },
        { id: "random", url: "/random.mp3", fileName: "random.mp3" },
        { id: "truncated", url: "/truncated.mp3", fileName: "truncated.mp3" },
        { id: "empty", url: "/empty.mp3", fileName: "empty.mp3" },
      ];
      const decodeAll = async (workerUrl: string, files: typeof ask) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        try {
          return await Promise.race([
            page.evaluate(([w, f]) =>
              (globalThis as unknown as {
                decodeAll(w: string, f: unknown): Promise<Reply[]>;
              }).decodeAll(w, f), [workerUrl, files] as const),
            new Promise<never>((_, reject) =>
              timer = setTimeout(
                () => reject(new Error(`${workerUrl} did not answer within 60 s`)),
                60_000,
              )
            ),
          ]);
        } finally {
          clearTimeout(timer);
        }
      };
      const replies = await decodeAll("/decode_worker.js", ask);
      const nativeDecode = () =>
        decodeMp3(demo, { id: "demo", fileName: "demo.mp3", format: "int16" });
      await nativeDecode(); // compiles the WASM: the next one is timed warm, like the browser's
      const n0 = performance.now();
      const native = await nativeDecode();
      const nativeMs = performance.now() - n0;
      const final = replies.filter((r) => r.type !== "progress");
      assertEquals(
        final.map((r) => `${"id" in r ? r.id : "?"} ${r.type}`),
        ["demo-cold done", "demo-warm done", "random error", "truncated error", "empty error"],
        "one final reply per request, in the order asked",
      );
      for (const r of final) {
        if (r.type !== "done") continue;
        assertEquals(r.rateHz, native.rateHz, "rate");
        assertEquals(r.frames, [native.left.length, native.left.length], "frame count");
        assertEquals(r.durationSec, native.left.length / native.rateHz, "duration");
        assertTrue(r.ownBuffers, "left and right arrive on buffers of their own");
        for (
          const [name, got, want] of [
            ["left", int16FromBase64(r.left), native.left],
            ["right", int16FromBase64(r.right), native.right],
          ] as const
        ) {
          let differ = 0;
          for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) differ++;
          assertEquals(differ, 0, `${r.id}: ${name} samples that differ from the native decode`);
        }
        const progress = replies.filter((p) => p.type === "progress" && p.id === r.id);
        const fractions = progress.map((p) => (p as { fraction: number }).fraction);
        assertTrue(fractions.length >= 1 && fractions.length <= 10, `${fractions.length} reports`);
        assertTrue(fractions.every((f, i) => f > 0 && f <= 1 && f >= (fractions[i - 1] ?? 0)));
      }
      const sentence = (id: string) => {
        const r = final.find((m) => "id" in m && m.id === id);
        return r?.type === "error" ? r.message : "";
      };
      assertTrue(
        /^Cannot (use|decode) "random\.mp3": .+/.test(sentence("random")),
        `random bytes: "${sentence("random")}"`,
      );
      assertTrue(
        sentence("truncated").startsWith(`Cannot use "truncated.mp3": the file is truncated`),
        `truncated: "${sentence("truncated")}"`,
      );
      assertEquals(sentence("empty"), `Cannot use "empty.mp3": the file is empty`);
      // Served with a policy that forbids WebAssembly the worker must say so, not hang (the
      // decoder library's own start-up never settles then).
      const strict = await decodeAll("/strict/decode_worker.js", [ask[0]]);
      assertEquals(strict.map((r) => r.type), ["error"]);
      const refusal = strict[0].type === "error" ? strict[0].message : "";
      assertTrue(/^Cannot decode "demo\.mp3": this page may not run WebAssembly/.test(refusal));
      // Cancelled, running or queued: nothing more is said about it; the others go on.
      const cancelled = await decodeAll("/decode_worker.js", [
        { ...ask[0], id: "running", cancel: true },
        { ...ask[0], id: "queued", cancel: true },
        { ...ask[0], id: "kept" },
      ]);
      assertEquals(
        cancelled.filter((r) => r.type !== "progress").map((r) => `${"id" in r && r.id} ${r.type}`),
        ["kept done"],
      );
      assertEquals(chrome.consoleErrors(), []);

      const ms = (id: string) => (final.find((m) => "id" in m && m.id === id) as { ms: number }).ms;
      const cold = ms("demo-cold"), warm = ms("demo-warm") - cold;
      const sec = native.left.length / native.rateHz;
      console.log(
        `Chromium decode worker, ${sec} s demo (${(demo.length / 1024).toFixed(0)} KB): ` +
          `${cold.toFixed(0)} ms cold (worker start and WASM compile included), ` +
          `${warm.toFixed(0)} ms warm (${(sec * 1000 / warm).toFixed(0)}× real time; ` +
          `natively in Deno ${nativeMs.toFixed(0)} ms); ` +
          `errors: ${JSON.stringify(sentence("random"))}`,
      );
    } finally {
      await chrome?.close();
      await server.shutdown();
    }
  },
});

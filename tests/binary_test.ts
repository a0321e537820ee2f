/**
 * The single binary, as far as it can be built without the Deno runtime download:
 *
 * - `deno task compile` for every target runs the real `deno compile` with the running `deno`
 *   standing in for the runtime (DENORT_BIN): what it embeds is checked in the file it writes.
 * - The app runs from a copy of exactly the binary's file set (packaging/manifest.ts), as a
 *   portable install (`--data-dir`) with HOME and the XDG folders pointing at an empty folder:
 *   a headless host and peer with sound, then the window creating a jam, adding the demo
 *   track, playing it and serving the phone page. Nothing may be missing from the copy and
 *   nothing may be written to the profile.
 */
import { assertEquals, assertTrue } from "./assert.ts";
import { hostTarget, stageTree, type Target, TARGETS } from "../packaging/manifest.ts";
import { VERSION } from "../app/version.ts";
import { SWARM_PROTOCOL } from "../swarm/protocol.ts";
import { launchChromium } from "./harness/browser.ts";
import { AppProcess, exitWithin } from "./harness/proc.ts";
import { freePort } from "./harness/ports.ts";
import { startPulse } from "./harness/pulse.ts";
import { holdDisplay, requestCloseLikeUser, startXvfb } from "./harness/xvfb.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };
const decoder = new TextDecoder();

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await filesUnder(dir, rel));
    else out.push(rel);
  }
  return out;
}

/** True when `needle` occurs in `hay` (bytes). */
function contains(hay: Uint8Array, needle: string): boolean {
  const n = new TextEncoder().encode(needle);
  outer: for (
    let i = hay.indexOf(n[0]);
    i >= 0 && i <= hay.length - n.length;
    i = hay.indexOf(n[0], i + 1)
  ) {
    for (let k = 1; k < n.length; k++) if (hay[i + k] !== n[k]) continue outer;
    return true;
  }
  return false;
}

Deno.test({
  name: "deno compile is given the UI, the demo, the audio worker and only the target's window " +
    "addon for each of the four targets, and embeds them for this one (runtime: this deno)",
  ...opts,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "phaselock-compile-" });
    const runtime = Deno.execPath();
    const runtimeBytes = (await Deno.stat(runtime)).size;
    const compile = async (target: Target, out: string, extra: string[] = []) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "packaging/compile.ts", "--target", target, "--out", out, ...extra],
        cwd: ROOT,
        env: { DENORT_BIN: runtime, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = decoder.decode(r.stdout) + decoder.decode(r.stderr);
      assertTrue(r.success, `compile for ${target} failed:\n${said.slice(-3000)}`);
      return said;
    };
    try {
      // Another OS's executable format needs that OS's runtime: those targets are checked
      // on the command line deno compile is given, this machine's on what it embedded.
      for (const target of Object.keys(TARGETS) as Target[]) {
        const args = JSON.parse(await compile(target, out, ["--print-args"])) as string[];
        const excluded = args.filter((_, i) => args[i - 1] === "--exclude");
        const included = args.filter((_, i) => args[i - 1] === "--include");
        for (const [other, { addon }] of Object.entries(TARGETS)) {
          const out = excluded.some((p) => p.endsWith(`/webview-napi.${addon}.node`));
          assertEquals(out, other !== target, `${target}: addon ${addon} excluded=${out}`);
        }
        assertTrue(included.includes("audio/output_worker.ts"), `${target}: ${included}`);
        assertEquals(args.includes("--icon"), TARGETS[target].exe === ".exe", `${target} icon`);
      }
      const target = hostTarget();
      assertTrue(target, `this machine (${Deno.build.target}) is not a build target`);
      const said = await compile(target, out);
      const file = `${out}/phaselock-${target}${TARGETS[target].exe}`;
      // What the compiler added to the runtime: the app's files and their index.
      const payload = (await Deno.readFile(file)).subarray(runtimeBytes);
      for (
        const name of [
          "decode_worker.js",
          "peer.html",
          "swarm.html",
          "demo.mp3",
          "output_worker.ts",
          "decode_job.ts",
        ]
      ) {
        assertTrue(contains(payload, name), `${name} is not in the binary`);
      }
      // The compiler lists what it embedded (the loader's code names every addon, so the
      // payload's bytes cannot tell): exactly one addon, the target's; no test-only package.
      const addons = [...said.matchAll(/webview-napi\.([\w-]+)\.node \(/g)].map((m) => m[1]);
      assertEquals(addons, [TARGETS[target].addon], "addons embedded");
      for (const devOnly of ["playwright-core@", "puppeteer-core@", "chromium-bidi@"]) {
        assertTrue(!said.includes(devOnly), `${devOnly} is in the binary`);
      }
      assertTrue(payload.length < 40e6, `${payload.length} bytes added`);
      console.log(JSON.stringify({ target, payloadBytes: payload.length }));
      console.log(
        `app inside the ${target} binary (runtime excluded): ${
          (payload.length / 1e6).toFixed(1)
        } MB`,
      );
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

/** A swarm join, as a page sends it. */
const JOIN = {
  type: "join",
  protocol: SWARM_PROTOCOL,
  // A swarm id is the SHA-256 of its key, in hex; the server takes any such string.
  swarm: "5e".repeat(32),
  name: "Probe",
};

/** The staged copy and an empty profile, made once for the tests below. */
let staged: Promise<{ dir: string; files: number }> | null = null;
function stage() {
  return staged ??= (async () => {
    const target = hostTarget();
    assertTrue(target, `this machine (${Deno.build.target}) is not a build target`);
    const dir = await Deno.makeTempDir({ prefix: "phaselock-staged-" });
    // The bundles are part of the file set: build them as `deno task compile` does.
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "app/ui_assets.ts"],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assertTrue(built.success, `UI build failed: ${decoder.decode(built.stderr)}`);
    return { dir, files: await stageTree(dir, target) };
  })();
}

/** The runtime's own cache (a compiled binary has none); kept out of the empty profile. */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return JSON.parse(decoder.decode(out.stdout)).denoDir;
}

/** An environment whose home and XDG folders are `home`, plus `extra`. */
async function emptyProfile(home: string, extra: Record<string, string> = {}) {
  return {
    HOME: home,
    XDG_CONFIG_HOME: `${home}/.config`,
    XDG_CACHE_HOME: `${home}/.cache`,
    XDG_DATA_HOME: `${home}/.local/share`,
    XDG_STATE_HOME: `${home}/.local/state`,
    DENO_DIR: await denoDir(),
    ...extra,
  };
}

async function assertEmpty(home: string, what: string) {
  const left = await filesUnder(home);
  assertEquals(left, [], `${what} wrote into the profile: ${left.join(", ")}`);
}

Deno.test({
  name: "from a copy of exactly the binary's files, portable: --version, and a host and peer " +
    "play the demo with sound, leaving the profile empty",
  ...opts,
  async fn() {
    const { dir } = await stage();
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-portable-" });
    const home = `${tmp}/home`;
    await Deno.mkdir(home);
    const pulse = await startPulse(2);
    const procs: AppProcess[] = [];
    try {
      const env = await emptyProfile(home);
      const version = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "main.ts", "--version"],
        cwd: dir,
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const line = decoder.decode(version.stdout).trim();
      assertTrue(version.success && line.startsWith(`PhaseLock ${VERSION} (protocol `), line);

      const port = freePort();
      const run = (args: string[], device: number) => {
        const p = new AppProcess(args, {
          cwd: dir,
          script: `${dir}/main.ts`,
          env: { ...env, ...pulse.env(device) },
        });
        procs.push(p);
        return p;
      };
      const host = run([
        ...["host", "--headless", "--name", "Stick", "--as", "Host", "--audio", "pulse"],
        ...["--port", String(port), "--bind", "127.0.0.1", "--no-advertise"],
        ...["--data-dir", `${tmp}/host-data`, `${dir}/assets/demo.mp3`],
      ], 0);
      await host.waitFor((e) => e.type === "session", 30_000, "the host's session");
      const peer = run([
        ...["join", "--headless", `127.0.0.1:${port}`, "--as", "Sam", "--audio", "pulse"],
        ...["--data-dir", `${tmp}/peer-data`],
      ], 1);
      await host.waitFor(
        (e) => e.type === "track-ready" && e.peer === "Sam",
        30_000,
        "the peer to have the demo ready",
      );
      await host.send("play");
      await peer.waitFor((e) => e.type === "started", 15_000, "the peer playing");
      await new Promise((r) => setTimeout(r, 1500));
      // The peer first: a peer whose host leaves exits 3 ("Host disconnected").
      for (const p of [peer, host]) assertEquals((await p.quit()).code, 0, p.stderr.slice(-800));

      await assertEmpty(home, "a portable host and peer");
      const hostFiles = await filesUnder(`${tmp}/host-data`);
      const peerFiles = await filesUnder(`${tmp}/peer-data`);
      assertTrue(hostFiles.includes("logs/phaselock.log"), `host data: ${hostFiles.join(", ")}`);
      assertTrue(peerFiles.includes("logs/phaselock.log"), `peer data: ${peerFiles.join(", ")}`);
      assertTrue(
        peerFiles.some((f) => f.startsWith("cache/tracks/")),
        `the peer's received track is not in its data folder: ${peerFiles.join(", ")}`,
      );
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      await pulse.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "from the same copy, portable: serve --headless serves the swarm page and its " +
    "WebSocket, refuses uploads, quits on a signal and leaves the profile empty",
  ...opts,
  async fn() {
    const { dir } = await stage();
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-portable-serve-" });
    const home = `${tmp}/home`;
    await Deno.mkdir(home);
    const server = new AppProcess(
      ["serve", "--headless", "--port", "0", "--bind", "127.0.0.1", "--data-dir", `${tmp}/data`],
      { cwd: dir, script: `${dir}/main.ts`, env: await emptyProfile(home) },
    );
    try {
      const serving = await server.waitFor((e) => e.type === "serving", 30_000, "serving");
      const base = `http://127.0.0.1:${serving.port}`;
      // Everything a phone downloads to join, from the copy: page, engine, decoder, style.
      const sizes: string[] = [];
      for (
        const [path, min] of [
          ["/", 300],
          ["/swarm.js", 10_000],
          ["/decode_worker.js", 10_000],
          ["/app.css", 1000],
        ] as const
      ) {
        const res = await fetch(base + path);
        const body = await res.arrayBuffer();
        assertTrue(res.ok && body.byteLength > min, `${path}: ${res.status}, ${body.byteLength} B`);
        sizes.push(`${path} ${body.byteLength} B`);
      }
      const put = await fetch(`${base}/swarm.js`, { method: "POST", body: "x" });
      await put.body?.cancel();
      assertTrue(put.status === 404 || put.status === 405, `a POST got ${put.status}`);
      // The WebSocket answers a join with a welcome.
      const ws = new WebSocket(`ws://127.0.0.1:${serving.port}/swarm`);
      const welcome = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no welcome within 10 s")), 10_000);
        ws.onerror = () => reject(new Error("the swarm WebSocket failed"));
        ws.onopen = () => ws.send(JSON.stringify(JOIN));
        ws.onmessage = (m) => {
          clearTimeout(timer);
          resolve(JSON.parse(m.data));
        };
      });
      ws.close();
      assertEquals(welcome.type, "welcome", JSON.stringify(welcome));
      server.kill("SIGTERM");
      const status = await exitWithin(server, 10_000);
      assertTrue(status, "still running 10 s after SIGTERM");
      assertEquals(status.code, 0, server.stderr.slice(-1500));
      await assertEmpty(home, "the portable server");
      console.log(`swarm server from the copy: ${sizes.join(", ")}; a join welcomed`);
    } finally {
      if (!(await exitWithin(server, 100))) {
        server.kill("SIGKILL");
        await server.exited;
      }
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "from the same copy, portable: the window opens, a jam plays the built-in demo and " +
    "serves the phone page; closing the window exits 0 and the profile stays empty",
  ...opts,
  async fn() {
    const { dir } = await stage();
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-portable-win-" });
    const home = `${tmp}/home`;
    const data = `${tmp}/PhaseLock Data`;
    await Deno.mkdir(home);
    const x = await startXvfb({ screen: "1280x800x24" });
    const hold = holdDisplay(x.display);
    let app: AppProcess | null = null;
    let browser: Awaited<ReturnType<typeof launchChromium>> | null = null;
    try {
      app = new AppProcess(
        [
          ...["--audio", "null", "--no-discover", "--no-advertise", "--bind", "127.0.0.1"],
          ...["--print-url", "--data-dir", data],
        ],
        {
          cwd: dir,
          script: `${dir}/main.ts`,
          env: await emptyProfile(home, { DISPLAY: x.display, GDK_BACKEND: "x11" }),
        },
      );
      const ui = await app.waitFor((e) => e.type === "ui", 30_000, "the UI address");
      browser = await launchChromium();
      const page = await browser.page(ui.url as string);
      const port = freePort();
      await page.getByRole("button", { name: "Create Jam" }).click();
      await page.getByLabel("Session name").fill("Stick Jam");
      await page.getByLabel("Your name").fill("Alex");
      await page.getByLabel("Port").fill(String(port));
      await page.getByRole("button", { name: "Create Jam" }).click();
      await page.getByRole("heading", { name: "Stick Jam" }).waitFor({ timeout: 15_000 });
      await page.getByRole("button", { name: "Add demo track" }).click();
      const play = page.locator("button[aria-label=Play]:not([disabled])");
      await play.waitFor({ timeout: 20_000 });
      await play.click();
      await page.getByRole("button", { name: "Pause" }).waitFor({ timeout: 10_000 });

      // The phone page comes from the copy too: page, engine and decoder.
      for (const [path, bytes] of [["", 0], ["peer.js", 1000], ["decode_worker.js", 1000]]) {
        const res = await fetch(`http://127.0.0.1:${port}/${path}`);
        const body = await res.text();
        assertTrue(res.ok && body.length > (bytes as number), `/${path}: ${res.status}`);
      }
      await browser.close();
      browser = null;

      assertTrue(requestCloseLikeUser(x.display, "PhaseLock"), 'no window titled "PhaseLock"');
      const status = await exitWithin(app, 10_000);
      assertTrue(status, `still running 10 s after the window closed: ${app.stderr.slice(-1500)}`);
      assertEquals(status.code, 0, app.stderr.slice(-1500));

      await assertEmpty(home, "the portable app");
      const kept = await filesUnder(data);
      for (const want of ["settings/app.json", "logs/phaselock.log"]) {
        assertTrue(kept.includes(want), `${want} missing from the data folder: ${kept.join(", ")}`);
      }
      console.log(`portable data folder after a session: ${kept.join(", ")}`);
    } finally {
      await browser?.close();
      if (app && !(await exitWithin(app, 100))) {
        app.kill("SIGKILL");
        await app.exited;
      }
      hold.close();
      await x.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

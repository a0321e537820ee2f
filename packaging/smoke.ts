/**
 * A smoke test of a built program, run by the release workflow on each OS before packaging:
 *
 *   deno task smoke --bin dist/phaselock-T [--window]
 *   deno task smoke --bin "deno run -A main.ts"        (from source, as the tests run it)
 *
 * (a) `--version` prints `PhaseLock <VERSION>`; (b) a headless host and a headless peer on
 * loopback (a free port, null audio, no mDNS, their own config, cache and log in a temp folder)
 * play the demo track until the peer says it has started; both quit with code 0; (c) with
 * `--window`, the app opens its window (a display is needed: xvfb-run on Linux), says so, and
 * quits with code 0 when its UI sends `quit`. Prints one JSON line of figures and a one-line
 * summary; on a failure, one sentence and exit code 1.
 */
import { fileURLToPath } from "node:url";
import { VERSION } from "../app/version.ts";

/** The demo track of the checkout (headless `host` takes file paths). */
const DEMO = fileURLToPath(new URL("../assets/demo.mp3", import.meta.url));

class SmokeError extends Error {}

interface Event {
  type: string;
  [k: string]: unknown;
}

/** A running program: JSON lines from stdout as events, stderr kept, commands to stdin. */
class Program {
  readonly events: Event[] = [];
  stderr = "";
  readonly child: Deno.ChildProcess;
  readonly exited: Promise<Deno.CommandStatus>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #changed: (() => void)[] = [];

  constructor(readonly name: string, cmd: string[], args: string[]) {
    this.child = new Deno.Command(cmd[0], {
      args: [...cmd.slice(1), ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    const lines = (s: ReadableStream<Uint8Array>, on: (line: string) => void) =>
      (async () => {
        let buf = "";
        for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
          buf += chunk;
          for (let nl; (nl = buf.indexOf("\n")) >= 0; buf = buf.slice(nl + 1)) on(buf.slice(0, nl));
          this.#changed.splice(0).forEach((w) => w());
        }
        this.#changed.splice(0).forEach((w) => w());
      })();
    const out = lines(this.child.stdout, (l) => {
      try {
        this.events.push(JSON.parse(l));
      } catch { /* not an event */ }
    });
    const err = lines(this.child.stderr, (l) => this.stderr += l + "\n");
    this.exited = Promise.all([this.child.status, out, err]).then(([s]) => s);
  }

  async send(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(line + "\n")).catch(() => {});
  }

  /** Waits for what `found` finds in the events and stderr, or fails after `ms`. */
  async waitFor<T>(what: string, ms: number, found: () => T | undefined): Promise<T> {
    const deadline = Date.now() + ms;
    let ended = false;
    this.exited.then(() => ended = true);
    for (;;) {
      const hit = found();
      if (hit !== undefined) return hit;
      if (ended || Date.now() > deadline) {
        const why = ended ? "it exited" : `none within ${ms / 1000} s`;
        throw new SmokeError(
          `The ${this.name} never showed ${what} (${why}); its last events: ${
            JSON.stringify(this.events.slice(-4))
          }; its stderr ends: ${this.stderr.slice(-600).trim() || "(nothing)"}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.#changed.push(() => (clearTimeout(t), r()));
      });
    }
  }

  event(what: string, ms: number, pred: (e: Event) => boolean): Promise<Event> {
    return this.waitFor(what, ms, () => this.events.find(pred));
  }

  /** Sends `quit` (or runs `ask`), then expects exit code 0 within 10 s. */
  async quit(ask: () => Promise<void> = () => this.send("quit")): Promise<void> {
    await ask();
    const late = setTimeout(() => this.kill(), 10_000);
    const s = await this.exited;
    clearTimeout(late);
    if (s.code !== 0) {
      throw new SmokeError(
        `The ${this.name} exited with code ${s.code} after quit; its stderr ends: ${
          this.stderr.slice(-600).trim() || "(nothing)"
        }`,
      );
    }
  }

  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
}

/**
 * The command to run: `--bin` names a file (made absolute), or is a command line split at
 * spaces, e.g. "deno run -A main.ts".
 */
export function commandOf(bin: string): string[] {
  try {
    if (Deno.statSync(bin).isFile) return [Deno.realPathSync(bin)];
  } catch { /* not a file: a command line */ }
  const words = bin.trim().split(/\s+/).filter(Boolean);
  if (!words.length) throw new SmokeError("--bin needs the program's path or a command.");
  return words;
}

/** A port on which nothing listens on loopback, TCP and UDP, below the ephemeral range. */
function freePort(): number {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      Deno.listenDatagram({ hostname: "127.0.0.1", port, transport: "udp" }).close();
      return port;
    } catch { /* taken */ }
  }
  throw new SmokeError("No free loopback port was found between 20000 and 32000.");
}

const now = () => performance.now();
const ms = (t0: number) => Math.round(now() - t0);

/** (a) The version line. */
async function version(cmd: string[]): Promise<{ version: string; msToVersion: number }> {
  const t0 = now();
  let r: Deno.CommandOutput;
  try {
    r = await new Deno.Command(cmd[0], {
      args: [...cmd.slice(1), "--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new SmokeError(`${cmd[0]} cannot be started: ${(e as Error).message}`);
  }
  const took = ms(t0);
  const out = new TextDecoder().decode(r.stdout).trim();
  if (r.code !== 0 || !out.startsWith(`PhaseLock ${VERSION}`)) {
    throw new SmokeError(
      `--version should print "PhaseLock ${VERSION} …" and exit 0; it printed "${out}" and ` +
        `exited with ${r.code} (${new TextDecoder().decode(r.stderr).trim().slice(-300)}).`,
    );
  }
  return { version: out, msToVersion: took };
}

/** (b) A host and a peer on loopback play the demo track. */
async function jam(cmd: string[], tmp: string): Promise<Record<string, number>> {
  const port = freePort();
  const own = (who: string) => [
    ...["--audio", "null", "--config-dir", `${tmp}/${who}/config`],
    ...["--cache-dir", `${tmp}/${who}/cache`, "--log-file", `${tmp}/${who}.log`],
  ];
  const t0 = now();
  const host = new Program("host", cmd, [
    ...["host", "--headless", "--name", "Smoke Jam", "--as", "Host", "--port", String(port)],
    ...["--bind", "127.0.0.1", "--no-advertise", ...own("host"), DEMO],
  ]);
  let peer: Program | null = null;
  try {
    await host.event("its session", 60_000, (e) => e.type === "session");
    await host.event(
      "the demo track queued",
      30_000,
      (e) => e.type === "queue" && Array.isArray(e.tracks) && e.tracks.length === 1,
    );
    const msHostReady = ms(t0);
    peer = new Program("peer", cmd, [
      ...["join", "--headless", `127.0.0.1:${port}`, "--as", "Peer", ...own("peer")],
    ]);
    await host.event("the peer joined", 60_000, (e) => e.type === "peer-joined");
    await host.event(
      "the demo track ready on the peer",
      30_000,
      (e) => e.type === "track-ready" && e.peer === "Peer",
    );
    const played = now();
    await host.send("play");
    await peer.event("the track playing", 15_000, (e) => e.type === "started");
    const msHostToPeerPlaying = ms(played);
    await peer.quit();
    await host.quit();
    return { msHostReady, msHostToPeerPlaying };
  } finally {
    peer?.kill();
    host.kill();
  }
}

/** (c) The app opens its window and quits when its UI says so. */
async function window(cmd: string[], tmp: string): Promise<Record<string, number>> {
  const t0 = now();
  const app = new Program("app", cmd, [
    ...["--print-url", "--audio", "null", "--no-discover", "--no-advertise", "--bind"],
    ...["127.0.0.1", "--config-dir", `${tmp}/app/config`, "--cache-dir", `${tmp}/app/cache`],
    ...["--log-file", `${tmp}/app.log`],
  ]);
  try {
    const ui = await app.event("the UI address", 60_000, (e) => e.type === "ui");
    await app.waitFor(
      "that its window is open",
      60_000,
      () => /PhaseLock is open/.test(app.stderr) || undefined,
    );
    const msToWindow = ms(t0);
    // Quit as the window's own UI does: `quit` on the control WebSocket, with the run's token.
    const url = new URL(ui.url as string);
    const token = new URLSearchParams(url.hash.slice(1)).get("token") ?? "";
    const closedAt = now();
    await app.quit(() =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://${url.host}/ws?token=${encodeURIComponent(token)}`);
        ws.onopen = () => {
          ws.send("quit");
          resolve();
        };
        ws.onerror = () =>
          reject(new SmokeError(`The app's control socket at ${url.host} refused.`));
      })
    );
    return { msToWindow, msWindowQuit: ms(closedAt) };
  } finally {
    app.kill();
  }
}

/** Runs the smoke test; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let bin: string | undefined, withWindow = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--bin") bin = args[++i];
    else if (args[i].startsWith("--bin=")) bin = args[i].slice(6);
    else if (args[i] === "--window") withWindow = true;
    else {
      console.error(`Unknown argument "${args[i]}": use --bin PATH|COMMAND [--window].`);
      return 2;
    }
  }
  if (!bin) {
    console.error('Say what to test: --bin dist/phaselock-TARGET or --bin "deno run -A main.ts".');
    return 2;
  }
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-smoke-" });
  try {
    const cmd = commandOf(bin);
    const figures: Record<string, string | number> = { ...await version(cmd) };
    Object.assign(figures, await jam(cmd, tmp));
    if (withWindow) Object.assign(figures, await window(cmd, tmp));
    console.log(JSON.stringify({ type: "smoke", ...figures }));
    console.log(
      `Smoke test passed: ${figures.version} (--version in ${figures.msToVersion} ms); a peer ` +
        `played the demo track ${figures.msHostToPeerPlaying} ms after the host's play` +
        (withWindow ? `; the window opened in ${figures.msToWindow} ms and quit cleanly.` : "."),
    );
    return 0;
  } catch (e) {
    if (!(e instanceof SmokeError)) throw e;
    console.error(`Smoke test failed: ${e.message}`);
    return 1;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * The sync benchmark's `snapcast` scenario: Snapcast (Debian's snapserver and snapclient) on the
 * rig of the `lan` scenario, so the two sets of figures compare directly. The same private
 * PulseAudio (null sink `bus`, a remap sink per device), the same noise track, the same length,
 * the same analysis. A snapserver on loopback reads the track's PCM from a TCP source we feed,
 * three snapclients each play into their own sink, and the bus monitor records all three.
 *
 * Like `lan`, the clients are connected a few seconds before the music starts, and the
 * measurement runs from "play" (the first PCM byte sent) for the scenario's seconds of sound.
 */
import { decodeMp3 } from "../audio/decode.ts";
import { freePort } from "../tests/harness/ports.ts";
import { procUsage } from "../tests/harness/proc.ts";
import { recordBus, startPulse } from "../tests/harness/pulse.ts";
import {
  analysePairs,
  LAN_SECONDS,
  noiseTrack,
  onsetAfter,
  overall,
  type PairResult,
  type ProcessUsage,
  type ScenarioOptions,
  type ScenarioResult,
} from "./sync_rig.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realNow = () => performance.timeOrigin + performance.now();

const CLIENTS = 3;
/** snapserver's default buffer (sound plays this long after the server read it): left as shipped. */
const BUFFER_MS = 1000;
/** The tolerance for "converged": all pairs within it, to the end of the run. */
export const IN_SYNC_MS = 1;
/** Before the music starts, as `lan` waits after the peers lock (their clock filter's baseline). */
const CONNECTED_BEFORE_PLAY_MS = 3000;

const INSTALL_HINT = "install Debian's snapserver and snapclient packages " +
  "(deno task bench:sync installs them when run as root)";

// ---------------- figures from the lag series ----------------

/**
 * How far apart the devices started: the largest |lag| among every pair's first window with
 * sound (sub-sample, from the same cross-correlation as every other figure).
 */
export function startSpreadMs(pairs: PairResult[]): number | null {
  const first = pairs.flatMap((p) => p.series.length ? [Math.abs(p.series[0].lagMs)] : []);
  return first.length ? Math.max(...first) : null;
}

/**
 * Seconds from the first window with sound to the first window after which every pair stays
 * within `tolMs` until the end of the run; null when some pair was still outside at the end.
 */
export function convergedAfterSec(pairs: PairResult[], tolMs = IN_SYNC_MS): number | null {
  const withSound = pairs.filter((p) => p.series.length);
  if (!withSound.length) return null;
  const t0 = Math.min(...withSound.map((p) => p.series[0].atSec));
  let at = t0;
  for (const p of withSound) {
    const s = p.series;
    let lastOut = -1;
    for (let i = 0; i < s.length; i++) if (Math.abs(s[i].lagMs) > tolMs) lastOut = i;
    if (lastOut === s.length - 1) return null;
    at = Math.max(at, s[lastOut + 1].atSec);
  }
  return at - t0;
}

// ---------------- processes ----------------

/** A Snapcast process we started: its log kept for error messages, ended by its own pid. */
class SnapProcess {
  readonly child: Deno.ChildProcess;
  readonly spawnedMs = realNow();
  log = "";
  /** snapclient's own account: PulseAudio underflows, and hard corrections of its position. */
  underflows = 0;
  resyncs = 0;
  exit: Deno.CommandStatus | null = null;
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(readonly name: string, cmd: string, args: string[], env: Record<string, string>) {
    try {
      this.child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).spawn();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot run ${cmd}: it is not installed; ${INSTALL_HINT}.`);
      }
      throw new Error(`Cannot run ${cmd}: ${(e as Error).message}`);
    }
    for (const s of [this.child.stdout, this.child.stderr]) this.#collect(s);
    this.exited = this.child.status.then((s) => this.exit = s);
  }

  async #collect(s: ReadableStream<Uint8Array>) {
    let line = "";
    for await (const text of s.pipeThrough(new TextDecoderStream())) {
      this.log = (this.log + text).slice(-8000);
      const lines = (line + text).split("\n");
      line = lines.pop()!;
      for (const l of lines) {
        // 0.26 spells it "undeflow #N"; a jump is logged as e.g. "pShortBuffer->full() && …".
        if (/\(PulsePlayer\) unde\w*flow #/.test(l)) this.underflows++;
        if (/\(Stream\) p\w+Buffer->full\(\)/.test(l)) this.resyncs++;
      }
    }
  }

  /** Throws a sentence with the log's tail when the process has already ended. */
  assertRunning() {
    if (!this.exit) return;
    throw new Error(
      `${this.name} exited (code ${this.exit.code}${
        this.exit.signal ? `, ${this.exit.signal}` : ""
      }) before the run ended. Its log ends:\n${this.log.slice(-1500)}`,
    );
  }

  /** SIGTERM, then SIGKILL if it is still there after 3 s. */
  async stop() {
    if (this.exit) return;
    const signal = (sig: Deno.Signal) => {
      try {
        this.child.kill(sig);
      } catch { /* already gone */ }
    };
    signal("SIGTERM");
    const t = setTimeout(() => signal("SIGKILL"), 3000);
    await this.exited;
    clearTimeout(t);
  }

  async usage(elapsedSec: number): Promise<ProcessUsage | null> {
    const u = await procUsage(this.child.pid);
    if (!u) return null;
    const alive = Math.min((realNow() - this.spawnedMs) / 1000, elapsedSec);
    return { name: this.name, cpuPercent: (100 * u.cpuSec) / Math.max(1e-3, alive), ...u };
  }
}

async function versionOf(cmd: string): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n")[0].trim();
  } catch (e) {
    // Deno throws this one as the command is made, not from the promise.
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `The snapcast scenario needs ${cmd}, which is not installed: ${INSTALL_HINT}.`,
      );
    }
    throw e;
  }
}

/** Asks snapserver's JSON-RPC (TCP, one JSON object per line) how many clients are connected. */
async function connectedClients(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const t = setTimeout(() => conn.close(), 2000);
  try {
    const req = { id: 1, jsonrpc: "2.0", method: "Server.GetStatus" };
    await conn.write(new TextEncoder().encode(JSON.stringify(req) + "\r\n"));
    let buf = "";
    for await (const text of conn.readable.pipeThrough(new TextDecoderStream())) {
      buf += text;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        // Notifications may come first on the same connection; the answer carries our id.
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (msg.id !== 1) continue;
        const groups = msg.result?.server?.groups ?? [];
        return groups.flatMap((g: { clients: { connected: boolean }[] }) => g.clients)
          .filter((c: { connected: boolean }) => c.connected).length;
      }
    }
    return 0;
  } finally {
    clearTimeout(t);
    try {
      conn.close();
    } catch { /* closed by the timer or the read */ }
  }
}

/** The track as snapserver's input: 48000:16:2, interleaved little-endian. */
async function trackPcm(mp3: string): Promise<Uint8Array> {
  const pcm = await decodeMp3(await Deno.readFile(mp3), {
    id: "snapcast-bench",
    fileName: mp3,
    format: "int16",
  });
  if (pcm.rateHz !== 48000) {
    throw new Error(`The bench track "${mp3}" is ${pcm.rateHz} Hz; snapserver is fed 48000 Hz`);
  }
  const n = pcm.left.length;
  const out = new Uint8Array(n * 4);
  const v = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    v.setInt16(i * 4, pcm.left[i], true);
    v.setInt16(i * 4 + 2, pcm.right[i], true);
  }
  return out;
}

// ---------------- the scenario ----------------

export async function snapcastScenario(opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const log = opts.log ?? (() => {});
  const cacheDir = opts.cacheDir ?? `${ROOT}bench/.cache`;
  const seconds = opts.seconds ?? LAN_SECONDS;
  const notes = [await versionOf("snapserver"), await versionOf("snapclient")];
  // The file `lan` plays at this length (its own choice of track length), decoded as it decodes.
  const mp3 = await noiseTrack(cacheDir, "a", Math.max(30, seconds + 15));
  const pcm = await trackPcm(mp3);
  log(`snapcast: track ready (${notes.join(", ")})`);

  const tmp = await Deno.makeTempDir({ prefix: "phaselock-snapcast-" });
  const pulse = await startPulse(CLIENTS).catch(async (e) => {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  });
  const procs: SnapProcess[] = [];
  let rec: ReturnType<typeof recordBus> | null = null;
  let feed: Deno.TcpConn | null = null;
  try {
    const ports = { stream: freePort(), control: freePort(), source: freePort() };
    const source = `tcp://127.0.0.1:${ports.source}?name=bench&mode=server` +
      `&sampleformat=48000:16:2`;
    await Deno.writeTextFile(
      `${tmp}/snapserver.conf`,
      [
        "[server]",
        `datadir = ${tmp}`,
        "[http]",
        "enabled = false",
        "[tcp]",
        "enabled = true",
        "bind_to_address = 127.0.0.1",
        `port = ${ports.control}`,
        "[stream]",
        "bind_to_address = 127.0.0.1",
        `port = ${ports.stream}`,
        `source = ${source}`,
        `buffer = ${BUFFER_MS}`,
        "[logging]",
        "sink = stderr",
        "",
      ].join("\n"),
    );
    const server = new SnapProcess("snapserver", "snapserver", ["-c", `${tmp}/snapserver.conf`], {
      HOME: tmp,
    });
    procs.push(server);
    rec = recordBus(pulse);

    // The server is up once its control port answers.
    const deadline = (ms: number) => realNow() + ms;
    for (const until = deadline(10000);;) {
      server.assertRunning();
      if (await connectedClients(ports.control).then(() => true, () => false)) break;
      if (realNow() > until) {
        throw new Error(
          `snapserver did not answer on its control port within 10 s:\n${server.log.slice(-1500)}`,
        );
      }
      await sleep(100);
    }
    for (let k = 0; k < CLIENTS; k++) {
      procs.push(
        new SnapProcess(`snapclient${k + 1}`, "snapclient", [
          ...["-h", "127.0.0.1", "-p", String(ports.stream)],
          ...["--player", "pulse", "--hostID", `bench-client${k + 1}`, "-i", String(k + 1)],
          ...["--logsink", "stderr"],
        ], pulse.env(k)),
      );
    }
    for (const until = deadline(15000);;) {
      for (const p of procs) p.assertRunning();
      const n = await connectedClients(ports.control).catch(() => 0);
      if (n === CLIENTS) break;
      if (realNow() > until) {
        throw new Error(
          `Only ${n} of ${CLIENTS} snapclients connected to snapserver within 15 s. ` +
            `The last client's log ends:\n${procs.at(-1)!.log.slice(-1500)}`,
        );
      }
      await sleep(200);
    }
    log("snapcast: clients connected");
    await sleep(CONNECTED_BEFORE_PLAY_MS);

    // Play: the source starts. snapserver takes the PCM at its own pace (TCP back-pressure).
    for (const until = deadline(5000);;) {
      feed = await Deno.connect({ hostname: "127.0.0.1", port: ports.source }).catch(() => null);
      if (feed) break;
      server.assertRunning();
      if (realNow() > until) {
        throw new Error(
          `snapserver's TCP source on port ${ports.source} did not accept within 5 s`,
        );
      }
      await sleep(100);
    }
    const playMs = realNow();
    const conn = feed;
    const feeding = (async () => {
      const chunk = 48000 * 4 / 10; // 100 ms
      for (let off = 0; off < pcm.length; off += chunk) {
        let part = pcm.subarray(off, off + chunk);
        while (part.length) part = part.subarray(await conn.write(part));
      }
    })().catch(() => {/* the source closed at the end of the run */});

    const elapsed = deadline(BUFFER_MS + seconds * 1000);
    while (realNow() < elapsed) {
      for (const p of procs) p.assertRunning();
      await sleep(500);
    }
    const processes = (await Promise.all(procs.map((p) => p.usage((realNow() - playMs) / 1000))))
      .filter((u): u is ProcessUsage => u !== null);
    for (const p of procs.slice(1)) await p.stop();
    const r = await rec.stop();
    rec = null;
    feed.close();
    feed = null;
    await server.stop();
    await feeding;
    log(`snapcast: analysing ${(r.channels[0].length / 48000).toFixed(0)} s of recording`);

    const names = procs.slice(1).map((p) => p.name.replace("snap", ""));
    const pairs = analysePairs(r.channels, names, {
      fromSample: Math.max(0, Math.floor(r.sampleAt(playMs))),
    });
    const onset = onsetAfter(r.channels[0], r.sampleAt(playMs));
    const figures: Record<string, number | null> = {
      playToSoundMs: onset === null ? null : r.realMsOf(onset) - playMs,
      timingUncertaintyMs: r.chunkMs,
      bufferMs: BUFFER_MS,
      startSpreadMs: startSpreadMs(pairs),
      convergedAfterSec: convergedAfterSec(pairs),
    };
    for (const [k, p] of procs.slice(1).entries()) {
      figures[`underflows_client${k + 1}`] = p.underflows;
      figures[`resyncs_client${k + 1}`] = p.resyncs;
    }
    return {
      scenario: "snapcast",
      recordedSec: r.channels[0].length / 48000,
      pairs,
      overall: overall(pairs),
      figures,
      processes,
      notes,
    };
  } finally {
    try {
      feed?.close();
    } catch { /* closed */ }
    for (const p of procs.slice().reverse()) await p.stop();
    await rec?.stop().catch(() => {});
    await pulse.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/**
 * The acoustic sync benchmark's machinery. Each scenario starts a private PulseAudio (a null
 * sink `bus` with one channel per device and a remap sink per device), puts the host and peers
 * in their own network namespaces on a bridge, runs real `phaselock` processes headless,
 * records the bus monitor, and measures the lag between every pair of devices by
 * cross-correlation over sliding windows. The `browser` scenario runs its host on loopback
 * instead, with Chromium, Firefox and WebKitGTK pages as peers (each on its own sink), and so does
 * `calibrate` (bench/calibrate.ts: a native peer and a Chromium page). Used by
 * `bench/sync.ts` and by the CI test.
 */
import { launchChromium } from "../tests/harness/browser.ts";
import { launchFirefox } from "../tests/harness/firefox.ts";
import { createLan, type Lan } from "../tests/harness/netns.ts";
import {
  adaptPlaywright,
  adaptPuppeteer,
  openPage,
  type TestPage,
} from "../tests/harness/pages.ts";
import { AppProcess, type Event, procUsage } from "../tests/harness/proc.ts";
import {
  type BusRecording,
  type PrivatePulse,
  recordBus,
  startPulse,
} from "../tests/harness/pulse.ts";
import { makeNoiseMp3 } from "../tests/harness/tracks.ts";
import { findTrackStart, lagSeries, percentile } from "../tests/harness/xcorr.ts";
import { decodeMp3 } from "../audio/decode.ts";
import { browserProcesses, pageProcesses, type ProcMemory, tabProcess } from "./browser_procs.ts";
import { calibrateScenario } from "./calibrate.ts";
import { swarmScenario } from "./swarm.ts";
import { snapcastScenario } from "./snapcast.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realNow = () => performance.timeOrigin + performance.now();

export type ScenarioName =
  | "chain"
  | "lan"
  | "snapcast"
  | "wan"
  | "long"
  | "transport"
  | "latejoin"
  | "evening"
  | "browser"
  | "calibrate"
  | "swarm";
export const SCENARIOS: ScenarioName[] = [
  "chain",
  "lan",
  "snapcast",
  "wan",
  "transport",
  "latejoin",
  "evening",
  "browser",
  "calibrate",
  "swarm",
  "long",
];

export interface PairResult {
  pair: string;
  windows: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Largest change of lag between consecutive windows: an audible jump would show here. */
  maxStepMs: number;
  series: { atSec: number; lagMs: number }[];
}

export interface ProcessUsage {
  name: string;
  cpuPercent: number;
  cpuSec: number;
  rssMb: number;
  peakRssMb: number;
}

export interface ScenarioResult {
  scenario: ScenarioName;
  recordedSec: number;
  pairs: PairResult[];
  /** Over every window of every pair. */
  overall: { windows: number; p50Ms: number; p95Ms: number; maxMs: number };
  figures: Record<string, number | null>;
  processes: ProcessUsage[];
  drift?: DriftReport[];
  /** Browser peers: what each page's engine said about itself while it played. */
  pages?: PageReport[];
  /** More plots than the main one: written as sync-SCENARIO-NAME.svg. */
  plots?: { name: string; title: string; xLabel?: string; pairs: PairResult[] }[];
  notes: string[];
}

export interface DriftReport {
  device: string;
  simulatedSkewPpm: number;
  estimatedDriftPpm: number | null;
  deviceRatePpm: number | null;
  controlErrorP95Ms: number | null;
  /** The peer's estimate of host time against the truth (known here: all share one clock). */
  clockErrorMs: { p50: number; p95: number; max: number; series: number[] } | null;
  nudgeRmsPpm: number | null;
  resyncs: number;
  /** What an uncorrected clock with this skew would have drifted over the recording. */
  uncorrectedDriftMs: number;
}

export interface ScenarioOptions {
  /** Seconds of playback to measure (scenario default when absent). */
  seconds?: number;
  /** Where generated tracks are cached between runs. */
  cacheDir?: string;
  log?: (line: string) => void;
}

// ---------------- tracks ----------------

/** Generates (once, cached) a pink-noise MP3 with a slow tremolo: one clear xcorr peak. */
export async function noiseTrack(cacheDir: string, name: string, seconds: number) {
  await Deno.mkdir(cacheDir, { recursive: true });
  const mp3 = `${cacheDir}/${name}-${seconds}s.mp3`;
  try {
    await Deno.stat(mp3);
    return mp3;
  } catch { /* generate */ }
  await makeNoiseMp3(mp3, seconds);
  return mp3;
}

async function sha256File(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------- the rig ----------------

interface Device {
  name: string;
  proc: AppProcess;
  skewPpm: number;
}

class Rig {
  devices: Device[] = [];
  relays: AppProcess[] = [];
  notes: string[] = [];
  private constructor(
    readonly pulse: Awaited<ReturnType<typeof startPulse>>,
    readonly lan: Lan,
    readonly tmp: string,
    readonly rec: ReturnType<typeof recordBus>,
  ) {}

  static async create(devices: number): Promise<Rig> {
    const pulse = await startPulse(devices);
    let lan: Lan | null = null;
    try {
      lan = await createLan(devices);
      const tmp = await Deno.makeTempDir({ prefix: "phaselock-bench-" });
      return new Rig(pulse, lan, tmp, recordBus(pulse));
    } catch (e) {
      await lan?.destroy();
      await pulse.stop();
      throw e;
    }
  }

  host(files: string[]): Device {
    const proc = new AppProcess(
      ["host", "--headless", "--name", "Bench", "--as", "Host", "--audio", "pulse", ...files],
      { env: this.pulse.env(0), prefix: this.lan.exec(0) },
    );
    const d = { name: "host", proc, skewPpm: 0 };
    this.devices[0] = d;
    return d;
  }

  /** A link emulator in device k's namespace, relaying 127.0.0.1:7500 to the host. */
  relay(k: number, link: { delayMs: number; jitterMs: number; loss: number }): AppProcess {
    const relay = new AppProcess(
      [
        "--listen",
        "127.0.0.1:7500",
        "--to",
        `${this.lan.ip(0)}:7420`,
        "--delay-ms",
        String(link.delayMs),
        "--jitter-ms",
        String(link.jitterMs),
        "--loss",
        String(link.loss),
        "--seed",
        String(k),
      ],
      { prefix: this.lan.exec(k), script: `${ROOT}net/link_relay.ts` },
    );
    this.relays.push(relay);
    return relay;
  }

  peer(
    k: number,
    sim: { offsetMs: number; skewPpm: number },
    opts: { via?: string; cacheDir?: string; extra?: string[] } = {},
  ): Device {
    const proc = new AppProcess([
      "join",
      "--headless",
      opts.via ?? `${this.lan.ip(0)}:7420`,
      "--as",
      `Peer${k}`,
      "--audio",
      "pulse",
      "--cache-dir",
      opts.cacheDir ?? `${this.tmp}/cache${k}`,
      "--sim-clock-offset-ms",
      String(sim.offsetMs),
      "--sim-clock-skew-ppm",
      String(sim.skewPpm),
      ...(opts.extra ?? []),
    ], { env: this.pulse.env(k), prefix: this.lan.exec(k) });
    const d = { name: `peer${k}`, proc, skewPpm: sim.skewPpm };
    this.devices[k] = d;
    return d;
  }

  /** Waits until `n` peers have joined, hold every queued track and have locked clocks. */
  async settled(n: number, tracks: number, wan = false) {
    // Over a WAN the clock shows yellow by definition (round trip > 20 ms) once it is locked.
    const ok = wan ? ["green", "yellow"] : ["green"];
    const host = this.devices[0].proc;
    await host.waitFor((e) => e.type === "session", 20000, "host session");
    await host.waitFor(
      () => host.count((e) => e.type === "track-ready" && !!e.peer) >= n * tracks,
      60000,
      `tracks ready on ${n} peers`,
    );
    await host.waitFor(
      (e) =>
        e.type === "peers" && Array.isArray(e.peers) && e.peers.length === n &&
        e.peers.every((p: { clock: string }) => ok.includes(p.clock)),
      30000,
      "locked clocks",
    );
  }

  async usage(startMs: number): Promise<ProcessUsage[]> {
    const out: ProcessUsage[] = [];
    const elapsedSec = (realNow() - startMs) / 1000;
    for (const d of this.devices.filter(Boolean)) {
      const u = await procUsage(d.proc.child.pid);
      if (!u) continue;
      const alive = (realNow() - d.proc.spawnedMs) / 1000;
      out.push({
        name: d.name,
        cpuPercent: (100 * u.cpuSec) / Math.max(1e-3, Math.min(alive, elapsedSec + 60)),
        ...u,
      });
    }
    return out;
  }

  async finish(): Promise<BusRecording> {
    await Promise.all(this.devices.filter(Boolean).map((d) => d.proc.quit()));
    const rec = await this.rec.stop();
    return rec;
  }

  async destroy() {
    for (const p of [...this.devices.filter(Boolean).map((d) => d.proc), ...this.relays]) {
      p.kill();
      await p.exited;
    }
    await this.lan.destroy();
    await this.pulse.stop();
    await Deno.remove(this.tmp, { recursive: true }).catch(() => {});
  }
}

// ---------------- analysis ----------------

export function analysePairs(
  ch: Float32Array[],
  names: string[],
  opts: { fromSample?: number; hopSec?: number; maxLagMs?: number } = {},
): PairResult[] {
  const out: PairResult[] = [];
  const from = opts.fromSample ?? 0;
  for (let a = 0; a < ch.length; a++) {
    for (let b = a + 1; b < ch.length; b++) {
      const s = lagSeries(ch[a].subarray(from), ch[b].subarray(from), {
        windowSec: 0.25,
        hopSec: opts.hopSec ?? 0.25,
        maxLagMs: opts.maxLagMs,
      });
      const series = s.points.map((p) => ({ atSec: p.atSec + from / 48000, lagMs: p.lagMs }));
      out.push(pairOf(`${names[a]}–${names[b]}`, series));
    }
  }
  return out;
}

/** A pair's figures from its series of lags. */
export function pairOf(pair: string, series: PairResult["series"]): PairResult {
  const abs = series.map((p) => Math.abs(p.lagMs));
  let maxStep = 0;
  for (let i = 1; i < series.length; i++) {
    maxStep = Math.max(maxStep, Math.abs(series[i].lagMs - series[i - 1].lagMs));
  }
  return {
    pair,
    windows: abs.length,
    p50Ms: percentile(abs, 50),
    p95Ms: percentile(abs, 95),
    maxMs: abs.length ? Math.max(...abs) : NaN,
    maxStepMs: maxStep,
    series,
  };
}

/** Figures over every window of every pair. */
export function overall(pairs: PairResult[]): ScenarioResult["overall"] {
  const abs = pairs.flatMap((p) => p.series.map((s) => Math.abs(s.lagMs)));
  return {
    windows: abs.length,
    p50Ms: percentile(abs, 50),
    p95Ms: percentile(abs, 95),
    maxMs: abs.length ? Math.max(...abs) : NaN,
  };
}

/** First sample at or after `from` where the channel is clearly sounding (1 ms RMS > 0.01). */
export function onsetAfter(ch: Float32Array, from: number): number | null {
  const block = 48;
  for (let i = Math.max(0, Math.floor(from)); i + block <= ch.length; i += block) {
    let e = 0;
    for (let j = i; j < i + block; j++) e += ch[j] * ch[j];
    if (Math.sqrt(e / block) > 0.01) {
      for (let j = i; j < i + block; j++) if (Math.abs(ch[j]) > 0.005) return j;
      return i;
    }
  }
  return null;
}

/**
 * First time (sample) from `from` where b is within `tolMs` of a for 5 consecutive 50 ms windows
 * (10 ms apart), looking `spanSec` ahead.
 */
export function inSyncAfter(
  a: Float32Array,
  b: Float32Array,
  from: number,
  tolMs = 1,
  spanSec = 8,
): number | null {
  const win = 2400, hop = 480;
  let run = 0, runStart = 0;
  const to = from + 48000 * spanSec;
  const s = lagSeries(a.subarray(from, to), b.subarray(from, to), {
    windowSec: win / 48000,
    hopSec: hop / 48000,
    maxLagMs: 40,
  });
  let prevAt = -1;
  for (const p of s.points) {
    const ok = Math.abs(p.lagMs) <= tolMs;
    const contiguous = prevAt >= 0 && p.atSec - prevAt < 1.5 * hop / 48000;
    prevAt = p.atSec;
    if (ok && run > 0 && contiguous) run++;
    else if (ok) {
      run = 1;
      runStart = p.atSec;
    } else run = 0;
    if (run >= 5) return from + Math.round((runStart - win / 2 / 48000) * 48000);
  }
  return null;
}

function firstEvent(p: AppProcess, pred: (e: Event) => boolean): Event | undefined {
  return p.events.find(pred);
}

function clockLockMs(d: Device): { startup: number | null; connect: number | null } {
  const lock = firstEvent(d.proc, (e) => e.type === "clock" && e.locked === true);
  const session = firstEvent(d.proc, (e) => e.type === "session");
  return {
    startup: lock?.rxMs ? lock.rxMs - d.proc.spawnedMs : null,
    connect: lock?.rxMs && session?.rxMs ? lock.rxMs - session.rxMs : null,
  };
}

interface StatusSample {
  atMs: number;
  errorMs: number;
  nudgePpm: number;
  driftPpm: number | null;
  clockErrorMs: number | null;
  deviceRatePpm: number | null;
}

/** Asks every device for its status every `everyMs` while `until` is pending. */
async function pollStatus(rig: Rig, everyMs: number, until: Promise<unknown>) {
  const samples = new Map<string, StatusSample[]>();
  let done = false;
  until.then(() => done = true, () => done = true);
  while (!done) {
    for (const d of rig.devices.filter(Boolean)) {
      const before = d.proc.events.length;
      await d.proc.send("status");
      const ev = await d.proc.waitFor(
        (e) => e.type === "status" && d.proc.events.indexOf(e) >= before,
        3000,
        "status",
      ).catch(() => null);
      const audio = ev?.audio as
        | { stats: { errorMs: number; nudgePpm: number }; deviceRatePpm: number; playing: unknown }
        | null;
      if (!ev || !audio?.playing) continue;
      const clock = ev.clock as
        | { driftPpm: number; offsetMs: number; refLocalMs: number }
        | null
        | undefined;
      const sim = ev.sim as { offsetMs: number; skewPpm: number; refMs: number } | undefined;
      // The host runs on the true clock, so a peer's estimate of host time at local time L
      // is off by (L + offset) − real(L), where real(L) undoes the simulated error.
      let clockErrorMs: number | null = null;
      if (clock && sim) {
        const l = clock.refLocalMs;
        const real = sim.refMs + (l - sim.offsetMs - sim.refMs) / (1 + sim.skewPpm * 1e-6);
        clockErrorMs = l + clock.offsetMs - real;
      }
      const list = samples.get(d.name) ?? [];
      list.push({
        atMs: realNow(),
        errorMs: audio.stats.errorMs,
        nudgePpm: audio.stats.nudgePpm,
        driftPpm: clock ? clock.driftPpm : null,
        clockErrorMs,
        deviceRatePpm: audio.deviceRatePpm,
      });
      samples.set(d.name, list);
    }
    await Promise.race([sleep(everyMs), until]);
  }
  return samples;
}

function driftReports(
  rig: Rig,
  samples: Map<string, StatusSample[]>,
  recordedSec: number,
): DriftReport[] {
  return rig.devices.filter(Boolean).map((d) => {
    const s = samples.get(d.name) ?? [];
    const last = s.at(-1);
    const clockErrs = s.flatMap((x) => x.clockErrorMs === null ? [] : [x.clockErrorMs]);
    const resyncs = d.proc.count((e) =>
      e.type === "notice" && String(e.message).startsWith("Resynchronised")
    );
    return {
      device: d.name,
      simulatedSkewPpm: d.skewPpm,
      estimatedDriftPpm: last?.driftPpm ?? null,
      deviceRatePpm: last?.deviceRatePpm ?? null,
      clockErrorMs: clockErrs.length
        ? {
          p50: percentile(clockErrs.map(Math.abs), 50),
          p95: percentile(clockErrs.map(Math.abs), 95),
          max: Math.max(...clockErrs.map(Math.abs)),
          series: clockErrs,
        }
        : null,
      controlErrorP95Ms: s.length ? percentile(s.map((x) => Math.abs(x.errorMs)), 95) : null,
      nudgeRmsPpm: s.length
        ? Math.sqrt(s.reduce((t, x) => t + x.nudgePpm ** 2, 0) / s.length)
        : null,
      resyncs,
      uncorrectedDriftMs: Math.abs(d.skewPpm) * 1e-6 * recordedSec * 1000,
    };
  });
}

// ---------------- scenarios ----------------

/** The `lan` scenario's default length; `snapcast` runs as long, to compare. */
export const LAN_SECONDS = 20;

const SKEWS = [
  { offsetMs: 3200, skewPpm: 80 },
  { offsetMs: -1700, skewPpm: -80 },
];

export async function runScenario(
  name: ScenarioName,
  opts: ScenarioOptions = {},
): Promise<ScenarioResult> {
  const log = opts.log ?? (() => {});
  const cacheDir = opts.cacheDir ?? `${ROOT}bench/.cache`;
  if (name === "chain") return await measuringChain(opts);
  if (name === "evening") return await evening(opts);
  if (name === "browser") return await browserPeers(opts);
  if (name === "snapcast") return await snapcastScenario(opts);
  if (name === "calibrate") return await calibrateScenario(opts);
  if (name === "swarm") return await swarmScenario({ ...opts, cacheDir });
  const seconds = opts.seconds ??
    { lan: LAN_SECONDS, wan: 20, long: 600, transport: 0, latejoin: 12 }[name];
  const trackSec = name === "long" ? seconds + 20 : Math.max(30, seconds + 15);
  const trackA = await noiseTrack(cacheDir, "a", trackSec);
  const trackB = name === "transport" ? await noiseTrack(cacheDir, "b", 20) : null;
  log(`${name}: tracks ready`);
  const rig = await Rig.create(3);
  const startMs = realNow();
  const figures: Record<string, number | null> = {};
  try {
    const host = rig.host(trackB ? [trackA, trackB] : [trackA]).proc;
    await host.waitFor((e) => e.type === "session", 20000, "host session");
    const viaRelay = name === "wan";
    if (viaRelay) {
      for (const k of [1, 2]) {
        const r = rig.relay(k, { delayMs: 40, jitterMs: 10, loss: 0.02 });
        await r.waitFor((e) => e.type === "relay", 10000, "link emulator");
      }
    }
    const via = viaRelay ? "127.0.0.1:7500" : undefined;
    const peers = name === "latejoin" ? [1] : [1, 2];
    for (const k of peers) rig.peer(k, SKEWS[k - 1], { via });
    await rig.settled(peers.length, trackB ? 2 : 1, viaRelay);
    for (const k of peers) {
      const l = clockLockMs(rig.devices[k]);
      figures[`startupToLockMs_peer${k}`] = l.startup;
      figures[`connectToLockMs_peer${k}`] = l.connect;
    }
    log(`${name}: peers joined and locked`);
    // A drift baseline for the clock filter before the music starts.
    await sleep(name === "long" ? 5000 : 3000);

    const pressedMs = realNow();
    await host.send("play");
    await host.waitFor((e) => e.type === "started", 10000, "start");
    let measureFrom = pressedMs;
    let lateSpawnMs = 0;
    let statusPoll: Promise<Map<string, StatusSample[]>> | null = null;
    if (name === "transport") {
      const steps: [number, string][] = [
        [2000, "pause"],
        [1000, "resume"],
        [1500, '{"cmd":"seek","seconds":12}'],
        [1500, "skip"],
        [2000, '{"cmd":"seek","seconds":3}'],
        [2000, "pause"],
        [600, "resume"],
        [2000, ""],
      ];
      for (const [wait, cmd] of steps) {
        await sleep(wait);
        if (cmd) await host.send(cmd);
      }
    } else if (name === "latejoin") {
      await sleep(5000);
      // The late peer already has the file, as a peer that left and came back would.
      const cache = `${rig.tmp}/cache2`;
      await Deno.mkdir(cache, { recursive: true });
      await Deno.copyFile(trackA, `${cache}/${await sha256File(trackA)}.mp3`);
      const late = rig.peer(2, SKEWS[1], { cacheDir: cache });
      lateSpawnMs = late.proc.spawnedMs;
      await late.proc.waitFor((e) => e.type === "started", 15000, "late peer started");
      await sleep(seconds * 1000);
      const l = clockLockMs(late);
      figures.startupToLockMs_peer2 = l.startup;
      figures.connectToLockMs_peer2 = l.connect;
      measureFrom = lateSpawnMs;
    } else {
      const playing = sleep(seconds * 1000);
      statusPoll = pollStatus(rig, name === "long" ? 5000 : 2000, playing);
      let next = 60;
      const t0 = realNow();
      while (realNow() - t0 < seconds * 1000) {
        await sleep(1000);
        const el = (realNow() - t0) / 1000;
        if (el >= next) {
          log(`${name}: ${Math.round(el)} of ${seconds} s`);
          next += 60;
        }
      }
      await playing;
    }
    const processes = await rig.usage(startMs);
    const samples = statusPoll ? await statusPoll : null;
    const rec = await rig.finish();
    log(`${name}: analysing ${(rec.channels[0].length / 48000).toFixed(0)} s of recording`);

    const names = rig.devices.map((d) => d.name);
    const fromSample = Math.max(0, Math.floor(rec.sampleAt(measureFrom)));
    const pairs = analysePairs(rec.channels, names, {
      fromSample,
      hopSec: name === "long" ? 0.5 : 0.25,
    });

    const onset = onsetAfter(rec.channels[0], rec.sampleAt(pressedMs));
    figures.playToSoundMs = onset === null ? null : rec.realMsOf(onset) - pressedMs;
    figures.timingUncertaintyMs = rec.chunkMs;
    if (name === "latejoin") {
      const on = onsetAfter(rec.channels[2], rec.sampleAt(lateSpawnMs));
      figures.lateJoinToSoundMs = on === null ? null : rec.realMsOf(on) - lateSpawnMs;
      const sync = on === null ? null : inSyncAfter(rec.channels[0], rec.channels[2], on);
      figures.lateJoinToInSyncMs = sync === null ? null : rec.realMsOf(sync) - lateSpawnMs;
    }
    return {
      scenario: name,
      recordedSec: rec.channels[0].length / 48000,
      pairs,
      overall: overall(pairs),
      figures,
      processes,
      drift: samples ? driftReports(rig, samples, seconds) : undefined,
      notes: rig.notes,
    };
  } finally {
    await rig.destroy();
  }
}

// ---------------- an evening ----------------

/**
 * A session in miniature: a queue of six tracks plays through; during the second a peer
 * crashes (SIGKILL) and comes back; during the third the other peer requests a seventh track,
 * which the host accepts. Measures sync over the whole recording, every track transition on
 * every device (from the recording), the rejoin, the request, and memory with a long queue.
 * `--seconds` sets the length of each track (default 15).
 */
async function evening(opts: ScenarioOptions): Promise<ScenarioResult> {
  const log = opts.log ?? (() => {});
  const cacheDir = opts.cacheDir ?? `${ROOT}bench/.cache`;
  const trackSec = opts.seconds ?? 15;
  const files: string[] = [];
  for (let i = 1; i <= 7; i++) files.push(await noiseTrack(cacheDir, `evening${i}`, trackSec));
  const ids = await Promise.all(files.map(sha256File));
  const pcm = new Map(
    await Promise.all(files.map(async (f, i) => {
      const p = await decodeMp3(await Deno.readFile(f), { id: ids[i], fileName: f });
      return [ids[i], p] as const;
    })),
  );
  log("evening: tracks ready");
  const rig = await Rig.create(3);
  const startMs = realNow();
  const figures: Record<string, number | null> = {};
  try {
    const host = rig.host(files.slice(0, 6)).proc;
    await host.waitFor((e) => e.type === "session", 20000, "host session");
    for (const k of [1, 2]) rig.peer(k, SKEWS[k - 1]);
    await rig.settled(2, 2);
    await sleep(3000);
    const pressedMs = realNow();
    await host.send("play");
    await host.waitFor((e) => e.type === "started", 10000, "start");
    log("evening: playing");

    await sleep(trackSec * 1500);
    const gone = rig.devices[2].proc;
    gone.kill("SIGKILL");
    await gone.exited;
    await host.waitFor((e) => e.type === "peer-left", 5000, "peer left");
    await sleep(3000);
    const back = rig.peer(2, SKEWS[1]);
    await back.proc.waitFor((e) => e.type === "started", 20000, "peer back");
    log("evening: peer 2 crashed and came back");

    await sleep(trackSec * 1000);
    const askedMs = realNow();
    await rig.devices[1].proc.send(`request ${files[6]}`);
    const offer = await host.waitFor(
      (e) => e.type === "request" && e.state === "waiting",
      10000,
      "request",
    );
    await host.send(`accept ${offer.id}`);
    const queued = await host.waitFor(
      (e) => e.type === "request" && e.state === "queued",
      20000,
      "request queued",
    );
    figures.requestToQueuedMs = queued.rxMs! - askedMs;
    log("evening: request accepted");

    await host.waitFor(
      (e) => e.type === "notice" && /End of the queue/.test(e.message as string),
      trackSec * 7000 + 30000,
      "end of the queue",
    );
    await host.send("status");
    const st = await host.waitFor((e) => e.type === "status", 5000, "status");
    const sinkPpm = (st.audio as { deviceRatePpm: number }).deviceRatePpm;
    const processes = await rig.usage(startMs);
    const rec = await rig.finish();

    const names = rig.devices.map((d) => d.name);
    const pairs = analysePairs(rec.channels, names, {
      fromSample: Math.floor(rec.sampleAt(pressedMs)),
    });
    // Every transition on every device, from the recording: where each track starts.
    const played = host.events.filter((e) => e.type === "playing");
    figures.tracksPlayed = played.length;
    const gaps: number[] = [];
    for (let k = 0; k < 3; k++) {
      const starts = played.map((e) =>
        findTrackStart(
          rec.channels[k],
          pcm.get(e.trackId as string)!,
          rec.sampleAt(e.atHostMs as number),
        )
      );
      for (let i = 1; i < played.length; i++) {
        const [a, b] = [starts[i - 1], starts[i]];
        if (a.peak < 0.5 || b.peak < 0.5) continue; // this device was away then
        const len = pcm.get(played[i - 1].trackId as string)!.left.length;
        // In samples of the recording's clock (the null sink), less what its rate error adds.
        gaps.push((b.at - a.at - len) / 48 - (len / 48) * sinkPpm * 1e-6);
      }
    }
    figures.transitionsMeasured = gaps.length;
    figures.transitionGapMaxMs = gaps.length ? Math.max(...gaps.map(Math.abs)) : null;
    const backAt = inSyncAfter(rec.channels[0], rec.channels[2], rec.sampleAt(back.proc.spawnedMs));
    figures.rejoinToInSyncMs = backAt === null ? null : rec.realMsOf(backAt) - back.proc.spawnedMs;
    return {
      scenario: "evening",
      recordedSec: rec.channels[0].length / 48000,
      pairs,
      overall: overall(pairs),
      figures,
      processes,
      notes: rig.notes,
    };
  } finally {
    await rig.destroy();
  }
}

// ---------------- browser peers ----------------

/** The goals for browser peers, printed beside the figures. */
export const BROWSER_GOALS = {
  /** Chromium↔native and Firefox↔native p95 (ms): the goal, and what must hold. */
  p95Ms: 1,
  p95MustMs: 2,
  /** Page opened → in-sync sound (ms), a track not on the page yet / kept by the page. */
  openToInSyncMs: 3000,
  openToInSyncCachedMs: 2000,
  /** A tab holding a 10-minute track (MB). */
  tabMemoryMb: 120,
} as const;

type BrowserEngine = "chromium" | "firefox" | "webkit";

/** What a page's engine said about itself while it played (`window.phaselock.debug()`). */
export interface PageReport {
  engine: BrowserEngine;
  samples: number;
  /** Share of samples placed by the output timestamp (the rest: currentTime + latency). */
  timestampShare: number | null;
  /** Spread of the report in use (ms): how much the page's own placement wobbles. */
  spreadMsP50: number | null;
  spreadMsMax: number | null;
  /** The page's own estimate of its placement error (|ms|), not the recording's. */
  ownErrorP95Ms: number | null;
  resyncs: number;
  /** The clock filter's error estimate and round trip (ms), median. */
  clockErrorMsP50: number | null;
  rttMsP50: number | null;
  /** Output timestamp minus currentTime + latency (ms), median over the page's trace. */
  apartMsP50: number | null;
}

interface BenchPage {
  engine: BrowserEngine;
  /** The name it joins as. */
  name: string;
  page: TestPage;
  /** Chromium: the page's main-thread JS heap and ArrayBuffer contents (CDP), in MB. */
  jsHeap(): Promise<{ usedMb: number; totalMb: number; backingStoreMb: number } | null>;
  close(): Promise<void>;
}

const ENGINE_NAMES: Record<BrowserEngine, string> = {
  chromium: "Chromium",
  firefox: "Firefox",
  webkit: "WebKit",
};

/** A fresh browser (its own profile: nothing cached) with one blank page playing into sink k. */
async function launchBenchPage(
  engine: BrowserEngine,
  pulse: PrivatePulse,
  k: number,
): Promise<BenchPage> {
  const name = ENGINE_NAMES[engine];
  const none = () => Promise.resolve(null);
  if (engine === "chromium") {
    const chrome = await launchChromium({ pulse: { env: pulse.env(k) } });
    try {
      const raw = await chrome.page("about:blank");
      return {
        engine,
        name,
        page: adaptPlaywright(raw),
        async jsHeap() {
          const cdp = await raw.context().newCDPSession(raw);
          try {
            await cdp.send("Performance.enable");
            const { metrics } = await cdp.send("Performance.getMetrics");
            const m = (n: string) => metrics.find((x) => x.name === n)?.value ?? NaN;
            // ArrayBuffer contents (the decoded track) live outside the JS heap proper.
            const usage = await cdp.send("Runtime.getHeapUsage") as { backingStorageSize?: number };
            return {
              usedMb: m("JSHeapUsedSize") / 2 ** 20,
              totalMb: m("JSHeapTotalSize") / 2 ** 20,
              backingStoreMb: (usage.backingStorageSize ?? NaN) / 2 ** 20,
            };
          } finally {
            await cdp.detach().catch(() => {});
          }
        },
        close: () => chrome.close(),
      };
    } catch (e) {
      await chrome.close();
      throw e;
    }
  }
  if (engine === "firefox") {
    const firefox = await launchFirefox({ pulse: { env: pulse.env(k) } });
    try {
      const raw = await firefox.page("about:blank");
      return { engine, name, page: adaptPuppeteer(raw), jsHeap: none, close: firefox.close };
    } catch (e) {
      await firefox.close();
      throw e;
    }
  }
  const webkit = await openPage("webkit", { pulse, sink: k });
  return { engine, name, page: webkit.page, jsHeap: none, close: webkit.close };
}

/** What the benchmark reads of a page's engine, every couple of seconds. */
const PAGE_STATUS = `(() => {
  const d = window.phaselock?.debug();
  const o = d?.output;
  return {
    source: o?.source ?? null, spreadMs: o?.spreadMs ?? null, errorMs: o?.errorMs ?? null,
    resyncs: o?.resyncs ?? 0, playing: !!o?.playing,
    clockErrorMs: d?.clock?.errorMs ?? null, rttMs: d?.clock?.rttMs ?? null,
  };
})()`;

interface PageStatus {
  source: string | null;
  spreadMs: number | null;
  errorMs: number | null;
  resyncs: number;
  playing: boolean;
  clockErrorMs: number | null;
  rttMs: number | null;
}

async function pageReport(p: BenchPage, samples: PageStatus[]): Promise<PageReport> {
  const s = samples.filter((x) => x.playing);
  const nums = (f: (x: PageStatus) => number | null) =>
    s.map(f).filter((v): v is number => v !== null && Number.isFinite(v));
  const med = (xs: number[]) => xs.length ? percentile(xs, 50) : null;
  const trace = await p.page.evaluate<{ apartMs: number | null }[]>(
    "window.phaselock?.debug().trace ?? []",
  ).catch(() => []);
  const apart = trace.map((t) => t.apartMs).filter((v): v is number => v !== null);
  const spreads = nums((x) => x.spreadMs);
  const errs = nums((x) => x.errorMs).map(Math.abs);
  return {
    engine: p.engine,
    samples: s.length,
    timestampShare: s.length ? s.filter((x) => x.source === "timestamp").length / s.length : null,
    spreadMsP50: med(spreads),
    spreadMsMax: spreads.length ? Math.max(...spreads) : null,
    ownErrorP95Ms: errs.length ? percentile(errs, 95) : null,
    resyncs: s.at(-1)?.resyncs ?? 0,
    clockErrorMsP50: med(nums((x) => x.clockErrorMs)),
    rttMsP50: med(nums((x) => x.rttMs)),
    apartMsP50: med(apart),
  };
}

/** Polls every page's status every 2 s until `until` settles. */
async function pollPages(pages: BenchPage[], until: Promise<unknown>) {
  const out = new Map<BenchPage, PageStatus[]>(pages.map((p) => [p, []]));
  let done = false;
  until.then(() => done = true, () => done = true);
  while (!done) {
    for (const p of pages) {
      const st = await p.page.evaluate<PageStatus>(PAGE_STATUS).catch(() => null);
      if (st) out.get(p)!.push(st);
    }
    await Promise.race([sleep(2000), until]);
  }
  return out;
}

/** A headless host on loopback (no namespaces: browsers need none), playing into sink 0. */
class BrowserJam {
  readonly url: string;
  constructor(readonly host: AppProcess, readonly port: number) {
    this.url = `http://127.0.0.1:${port}/`;
  }

  static start(pulse: PrivatePulse, files: string[]): BrowserJam {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const host = new AppProcess([
      ...["host", "--headless", "--name", "Bench", "--as", "Host", "--port", String(port)],
      ...["--bind", "127.0.0.1", "--audio", "pulse", "--no-advertise", ...files],
    ], { env: pulse.env(0) });
    return new BrowserJam(host, port);
  }

  /** Sends `line` and waits for the first event after it that matches `pred`. */
  async command(line: string, pred: (e: Event) => boolean, what = `"${line}"`, timeoutMs = 20000) {
    const from = this.host.events.length;
    await this.host.send(line);
    return await this.after(from, pred, what, timeoutMs);
  }

  /** The first event at index `from` or later that matches `pred`. */
  after(from: number, pred: (e: Event) => boolean, what: string, timeoutMs = 30000) {
    const h = this.host;
    return h.waitFor((e) => pred(e) && h.events.indexOf(e) >= from, timeoutMs, what);
  }

  /** Makes `file` the only track in the queue and plays it (no page is joined then). */
  async playOnly(file: string): Promise<Event> {
    const fileName = file.split("/").pop()!;
    await this.command("stop", () => true, "stop", 5000).catch(() => {});
    await this.command(
      `add ${file}`,
      (e) => e.type === "track-ready" && !e.peer && e.fileName === fileName,
      `${fileName} on the host`,
      60000,
    );
    await this.command("remove 1", (e) => e.type === "queue", "remove");
    return await this.command("play", (e) => e.type === "playing", "play");
  }
}

/** Goes to the jam's page, types the name, clicks Join; when each step was done (real ms). */
async function joinFromPage(p: BenchPage, url: string) {
  const openedMs = realNow();
  await p.page.goto(url);
  const loadedMs = realNow();
  await p.page.fill("input[name=name]", p.name);
  await p.page.click({ text: "Join" });
  return { openedMs, loadedMs, clickedMs: realNow() };
}

/**
 * Browser peers against a native host, each engine on its own sink, one recording:
 * 1. sync: Chromium and Firefox join; the host plays a track of `seconds` (default 60) s.
 * 2. page opened → in-sync sound: with the jam playing a ~5 MB track, each engine in turn
 *    opens the page, types a name, clicks Join; then (if the page keeps tracks) leaves and
 *    opens it again with the track kept.
 * 3. memory: both join a jam playing a 10-minute track; the tab's process is read from /proc.
 * 4. WebKitGTK, alone and shorter (it is placed ~70 ms late by design §6): if it runs.
 * One engine pass at a time keeps the 2-core machine at host + 2 browsers + PulseAudio.
 */
async function browserPeers(opts: ScenarioOptions): Promise<ScenarioResult> {
  const log = opts.log ?? (() => {});
  const cacheDir = opts.cacheDir ?? `${ROOT}bench/.cache`;
  const seconds = opts.seconds ?? 60;
  const syncFile = await noiseTrack(cacheDir, "a", seconds + 15);
  // ~5 MB at 128 kbps: 320 s × 16 000 B/s.
  const joinFile = await noiseTrack(cacheDir, "join5mb", 320);
  const memTrackSec = 600;
  const memFile = await noiseTrack(cacheDir, "ten", memTrackSec);
  const joinBytes = (await Deno.stat(joinFile)).size;
  log("browser: tracks ready");
  const figures: Record<string, number | null> = {};
  const notes: string[] = [];
  const plots: NonNullable<ScenarioResult["plots"]> = [];
  const open: BenchPage[] = [];
  const closeAll = async () => {
    for (const p of open.splice(0)) await p.close().catch(() => {});
  };
  const launch = async (engine: BrowserEngine, k: number) => {
    const p = await launchBenchPage(engine, pulse, k);
    open.push(p);
    return p;
  };
  const closePage = async (p: BenchPage) => {
    open.splice(open.indexOf(p), 1);
    await p.close().catch(() => {});
  };
  /**
   * Joins from `p` (a fresh browser on sink k if absent) and waits until the host hears the
   * track is ready there, calling `whileLoading` every 250 ms meanwhile. A fresh page that
   * never gets there is noted and replaced by a fresh browser once: Firefox's page now and
   * then stopped dead right after Join here (content process idle, evaluate timing out).
   */
  const join = async (
    engine: BrowserEngine,
    k: number,
    o: {
      page?: BenchPage;
      timeoutMs?: number;
      beforeGoto?: () => void;
      afterLoad?: () => void;
      whileLoading?: () => void;
    } = {},
  ) => {
    for (let attempt = 1;; attempt++) {
      const p = o.page ?? await launch(engine, k);
      o.beforeGoto?.();
      const from = host.events.length;
      const t = await joinFromPage(p, jam.url);
      o.afterLoad?.();
      const timeoutMs = o.timeoutMs ?? 60000;
      const deadline = realNow() + timeoutMs;
      let ready: Event | undefined;
      while (true) {
        o.whileLoading?.();
        ready = host.events.slice(from).find((e) => e.type === "track-ready" && e.peer === p.name);
        if (ready || realNow() > deadline) break;
        await sleep(250);
      }
      if (ready) return { p, t, ready, from };
      const said = await Promise.race([
        p.page.evaluate<string>(
          "JSON.stringify({ tracks: window.phaselock?.debug().tracks })",
        ).catch((e) => `${e}`.slice(0, 200)),
        sleep(5000).then(() => "the page did not answer in 5 s"),
      ]);
      const why = `${p.name}: no track ready ${timeoutMs / 1000} s after Join (${said})`;
      if (o.page || attempt >= 2) throw new Error(why);
      notes.push(`${why}; tried again with a fresh browser`);
      const left = host.events.length;
      await closePage(p);
      await jam.after(left, (e) => e.type === "peer-left" && e.name === p.name, "left")
        .catch(() => {});
    }
  };
  const pulse = await startPulse(4);
  const rec = recordBus(pulse);
  const jam = BrowserJam.start(pulse, [syncFile]);
  const host = jam.host;
  let recording: BusRecording | null = null;
  try {
    await host.waitFor((e) => e.type === "session", 60000, "host session");
    const hasCache = await Deno.stat(`${ROOT}ui/engine/track_cache.ts`).then(
      () => true,
      () => false,
    );
    figures.pageTrackCache = hasCache ? 1 : 0;

    // ---- 1. sync: Chromium (sink 1) and Firefox (sink 2) with the native host ----
    const engines: BrowserEngine[] = ["chromium", "firefox"];
    const pages: BenchPage[] = [];
    for (const [i, engine] of engines.entries()) pages.push((await join(engine, i + 1)).p);
    await host.waitFor(
      (e) =>
        e.type === "peers" && Array.isArray(e.peers) &&
        pages.every((p) =>
          (e.peers as { name: string; clock: string }[]).some((q) =>
            q.name === p.name && q.clock === "green"
          )
        ),
      30000,
      "the pages' clocks locked",
    );
    log("browser: Chromium and Firefox joined and locked");
    // As the native scenarios: a baseline for the clock filter before the music starts.
    await sleep(3000);
    const tabsBefore = engines.map((e) => tabProcess(e as "chromium" | "firefox", []));
    const allBefore = engines.map((e) => browserProcesses(e as "chromium" | "firefox"));
    const pressedMs = realNow();
    const playing = await jam.command("play", (e) => e.type === "playing");
    const played = sleep(seconds * 1000);
    const polled = pollPages(pages, played);
    await played;
    const pageSamples = await polled;
    const sampledMs = realNow();
    const tabsAfter = engines.map((e) => tabProcess(e as "chromium" | "firefox", []));
    const allAfter = engines.map((e) => browserProcesses(e as "chromium" | "firefox"));
    const stopped = await jam.command("stop", (e) => e.type === "stopped");
    const pageReports: PageReport[] = [];
    for (const p of pages) pageReports.push(await pageReport(p, pageSamples.get(p) ?? []));
    // CPU while playing: the tab's process, and every process of the browser (its audio
    // service or audio process plays the sound); memory of the whole browser as PSS.
    const processes: ProcessUsage[] = [];
    const playSec = (sampledMs - pressedMs) / 1000;
    engines.forEach((engine, i) => {
      const [b, a] = [tabsBefore[i], tabsAfter[i]];
      if (a) {
        const cpu = a.tab.cpuSec - (b?.tab.pid === a.tab.pid ? b.tab.cpuSec : 0);
        processes.push({
          name: `${engine} tab`,
          cpuPercent: (100 * cpu) / playSec,
          cpuSec: cpu,
          rssMb: a.tab.rssMb,
          peakRssMb: a.tab.peakRssMb,
        });
      }
      const cpuBefore = new Map(allBefore[i].map((x) => [x.pid, x.cpuSec]));
      const cpu = allAfter[i].reduce((t, x) => t + x.cpuSec - (cpuBefore.get(x.pid) ?? 0), 0);
      figures[`browserCpuPercent_${engine}`] = (100 * cpu) / playSec;
      figures[`browserPssMbPlaying_${engine}`] = allAfter[i].reduce((t, x) => t + x.pssMb, 0);
    });
    await closeAll();
    log(`browser: played ${seconds} s on the host, Chromium and Firefox`);

    // ---- 2. page opened → in-sync sound, a ~5 MB track, then the same page opened again ----
    await jam.playOnly(joinFile);
    const joins: {
      engine: BrowserEngine;
      k: number;
      cached: boolean;
      openedMs: number;
      leftMs: number;
    }[] = [];
    for (const [i, engine] of engines.entries()) {
      let p: BenchPage | undefined;
      try {
        for (const cached of hasCache ? [false, true] : [false]) {
          const j = await join(engine, i + 1, { page: p });
          p = j.p;
          const { t, ready, from } = j;
          const downloaded = host.events.slice(from).some((e) =>
            e.type === "transfer" && e.peer === p!.name && e.state === "downloading"
          );
          const key = `${cached ? "reopen" : "open"}To`;
          figures[`${key}LoadedMs_${engine}`] = t.loadedMs - t.openedMs;
          figures[`${key}JoinClickedMs_${engine}`] = t.clickedMs - t.openedMs;
          figures[`${key}ReadyMs_${engine}`] = ready.rxMs! - t.openedMs;
          if (cached) figures[`reopenDownloaded_${engine}`] = downloaded ? 1 : 0;
          // Long enough to slew into sync after a late start (≤ 0.2 %: 10 ms in 5 s).
          await sleep(12000);
          joins.push({ engine, k: i + 1, cached, openedMs: t.openedMs, leftMs: realNow() });
          const st = await p.page.evaluate<PageStatus>(PAGE_STATUS).catch(() => null);
          notes.push(
            `${engine} ${cached ? "reopened" : "opened"}: placed by its ${st?.source} report ` +
              `(spread ${st?.spreadMs?.toFixed(2)} ms, ${st?.resyncs} resyncs)`,
          );
          if (!cached && hasCache) {
            const left = host.events.length;
            await p.page.goto("about:blank");
            await jam.after(left, (e) => e.type === "peer-left" && e.name === p!.name, "left")
              .catch(() => notes.push(`${engine}: the host did not see the page leave`));
            await sleep(1500);
          }
        }
        log(`browser: ${engine} opened the page${hasCache ? " twice" : ""}`);
      } catch (e) {
        notes.push(`${engine}: page opened → in sync not measured: ${(e as Error).message}`);
      }
      await closeAll();
    }

    // ---- 3. memory: both tabs with a 10-minute track ----
    await jam.playOnly(memFile);
    const memPages: BenchPage[] = [];
    const memBefore: ProcMemory[][] = [];
    const pageLoaded: ProcMemory[][] = [];
    const loadMaxRss: number[] = [];
    for (const [i, engine] of engines.entries()) {
      const pe = engine as "chromium" | "firefox";
      let max = 0;
      try {
        const j = await join(engine, i + 1, {
          timeoutMs: 120000,
          beforeGoto: () => {
            memBefore[i] = pageProcesses(pe);
            max = 0;
          },
          afterLoad: () => pageLoaded[i] = pageProcesses(pe),
          // While it downloads and decodes: the tab's resident memory.
          whileLoading: () => max = Math.max(max, tabProcess(pe, memBefore[i])?.tab.rssMb ?? 0),
        });
        memPages.push(j.p);
        loadMaxRss[i] = max;
        figures[`memOpenToReadyMs_${engine}`] = j.ready.rxMs! - j.t.openedMs;
      } catch (e) {
        notes.push(`${engine}: memory not measured: ${(e as Error).message}`);
      }
    }
    await sleep(5000);
    const memSamples: { engine: BrowserEngine; tab: ProcMemory; grewMb: number }[][] = [];
    for (let n = 0; n < 5; n++) {
      memSamples.push(
        memPages.map((p) => p.engine).flatMap((e) => {
          const t = tabProcess(e as "chromium" | "firefox", memBefore[engines.indexOf(e)]);
          return t ? [{ engine: e, tab: t.tab, grewMb: t.grewMb }] : [];
        }),
      );
      await sleep(1000);
    }
    for (const p of memPages) {
      const i = engines.indexOf(p.engine);
      const mine = memSamples.flatMap((s) => s.filter((x) => x.engine === p.engine));
      const last = mine.at(-1);
      if (!last) {
        notes.push(`${p.engine}: no tab process found for the memory figure`);
        continue;
      }
      const e = p.engine;
      const playingNow = await p.page.evaluate<PageStatus>(PAGE_STATUS).catch(() => null);
      if (!playingNow?.playing) notes.push(`${e}: not playing when its memory was read`);
      figures[`tabRssMb_${e}`] = last.tab.rssMb;
      figures[`tabRssMaxMb_${e}`] = Math.max(...mine.map((x) => x.tab.rssMb));
      figures[`tabPeakRssMb_${e}`] = last.tab.peakRssMb;
      figures[`tabLoadingMaxRssMb_${e}`] = loadMaxRss[i];
      figures[`tabPssMb_${e}`] = last.tab.pssMb;
      figures[`tabAnonMb_${e}`] = last.tab.anonMb;
      figures[`tabFileMb_${e}`] = last.tab.fileMb;
      figures[`tabShmemMb_${e}`] = last.tab.shmemMb;
      const base = pageLoaded[i].find((x) => x.pid === last.tab.pid);
      figures[`tabPageOpenRssMb_${e}`] = base?.rssMb ?? null;
      figures[`tabPageOpenAnonMb_${e}`] = base?.anonMb ?? null;
      // What joining and loading the track added to the tab's own (anonymous) memory.
      figures[`tabJoinedAnonGrowthMb_${e}`] = base ? last.tab.anonMb - base.anonMb : null;
      const all = browserProcesses(e as "chromium" | "firefox");
      figures[`browserPssMb_${e}`] = all.reduce((t, x) => t + x.pssMb, 0);
      const heap = await p.jsHeap().catch(() => null);
      if (heap) {
        figures[`jsHeapUsedMb_${e}`] = heap.usedMb;
        figures[`jsHeapTotalMb_${e}`] = heap.totalMb;
        figures[`jsArrayBuffersMb_${e}`] = Number.isFinite(heap.backingStoreMb)
          ? heap.backingStoreMb
          : null;
      }
      const others = all.filter((x) => x.pid !== last.tab.pid)
        .sort((a, b) => b.rssMb - a.rssMb).slice(0, 4)
        .map((x) => `${x.kind} ${x.rssMb.toFixed(0)}`).join(", ");
      notes.push(
        `${e} tab = pid ${last.tab.pid} (${last.tab.kind}), grew ${last.grewMb.toFixed(0)} MB ` +
          `since before the page was opened; largest other processes (RSS MB): ${others}`,
      );
    }
    // The decoded track, as the page keeps it: int16, two channels.
    figures.memTrackPcmMb = (memTrackSec * 48000 * 2 * 2) / 2 ** 20;
    await closeAll();
    log("browser: memory read with a 10-minute track");

    // ---- 4. WebKitGTK alone, shorter ----
    let webkit: { k: number; fromMs: number; toMs: number; playing: Event } | null = null;
    try {
      await jam.command("stop", () => true, "stop", 5000).catch(() => {});
      await jam.playOnly(syncFile);
      await jam.command("stop", (e) => e.type === "stopped");
      await join("webkit", 3);
      await sleep(3000);
      const wkPlaying = await jam.command("play", (e) => e.type === "playing");
      await sleep(Math.min(seconds, 20) * 1000);
      const wkStopped = await jam.command("stop", (e) => e.type === "stopped");
      webkit = {
        k: 3,
        fromMs: wkPlaying.rxMs!,
        toMs: wkStopped.atHostMs as number,
        playing: wkPlaying,
      };
      await closeAll();
      log("browser: WebKit played");
    } catch (e) {
      notes.push(`WebKitGTK did not play: ${(e as Error).message.split("\n")[0].slice(0, 300)}`);
      await closeAll();
    }

    const processesHost = await procUsage(host.child.pid);
    if (processesHost) {
      const alive = (realNow() - host.spawnedMs) / 1000;
      processes.unshift({
        name: "host",
        cpuPercent: (100 * processesHost.cpuSec) / alive,
        ...processesHost,
      });
    }
    await host.quit();
    recording = await rec.stop();
    log(`browser: analysing ${(recording.channels[0].length / 48000).toFixed(0)} s of recording`);
    const r = recording;

    // Sync over the 60 s: every pair, from play to stop.
    const end = Math.floor(r.sampleAt(stopped.atHostMs as number)) - 4800;
    const chans = [0, 1, 2].map((k) => r.channels[k].subarray(0, Math.max(0, end)));
    const fromSample = Math.max(0, Math.floor(r.sampleAt(pressedMs)));
    const pairs = analysePairs(chans, ["host", "chromium", "firefox"], { fromSample });
    const onsets: Record<string, number | null> = {};
    for (const [k, name] of ["host", "chromium", "firefox"].entries()) {
      const on = onsetAfter(r.channels[k], fromSample);
      onsets[name] = on;
      figures[`playToSoundMs_${name}`] = on === null ? null : r.realMsOf(on) - playing.rxMs!;
      figures[`soundVsScheduleMs_${name}`] = on === null
        ? null
        : r.realMsOf(on) - (playing.atHostMs as number);
    }
    figures.pressedToPlayingMs = playing.rxMs! - pressedMs;
    figures.leadMs = (playing.atHostMs as number) - playing.rxMs!;
    figures.timingUncertaintyMs = r.chunkMs;
    for (const engine of engines) {
      const pair = pairs.find((p) => p.pair === `host–${engine}`)!;
      figures[`p95Ms_${engine}`] = pair.p95Ms;
      figures[`maxMs_${engine}`] = pair.maxMs;
      // After the first 10 s of sound: what the page holds once its reports have settled.
      const on = onsets[engine];
      if (on !== null) {
        const late = pair.series.filter((s) => s.atSec > on / 48000 + 10).map((s) =>
          Math.abs(s.lagMs)
        );
        figures[`settledP95Ms_${engine}`] = late.length ? percentile(late, 95) : null;
      }
      const mean = pair.series.reduce((t, s) => t + s.lagMs, 0) / Math.max(1, pair.series.length);
      figures[`meanLagMs_${engine}`] = mean;
    }

    // Page opened → in-sync sound, from the recording.
    const joinPairs: PairResult[] = [];
    for (const j of joins) {
      const ch = r.channels[j.k];
      const key = `${j.cached ? "reopen" : "open"}To`;
      const from = Math.max(0, Math.floor(r.sampleAt(j.openedMs)));
      const spanSec = (j.leftMs - j.openedMs) / 1000;
      const on = onsetAfter(ch.subarray(0, from + Math.floor(48000 * spanSec)), from);
      figures[`${key}SoundMs_${j.engine}`] = on === null ? null : r.realMsOf(on) - j.openedMs;
      const sync = on === null
        ? null
        : inSyncAfter(r.channels[0], ch, on, 1, spanSec - (on - from) / 48000);
      figures[`${key}InSyncMs_${j.engine}`] = sync === null ? null : r.realMsOf(sync) - j.openedMs;
      const to = from + Math.floor(48000 * spanSec);
      const s = lagSeries(r.channels[0].subarray(from, to), ch.subarray(from, to), {
        windowSec: 0.25,
        hopSec: 0.1,
        maxLagMs: 45,
      });
      joinPairs.push(pairOf(`${j.engine}${j.cached ? " (kept)" : ""}`, s.points));
      // In sync for good: from the first window after which none is off by more than 1 ms
      // until the page left (a young context's reports can still pull it away after it was
      // first in sync).
      const lastOff = s.points.findLastIndex((p) => Math.abs(p.lagMs) > 1);
      const stable = s.points[lastOff + 1];
      figures[`${key}StableMs_${j.engine}`] = stable && s.points.at(-1)!.atSec - stable.atSec >= 2
        ? Math.max(0, stable.atSec - 0.125) * 1000 + (r.realMsOf(from) - j.openedMs)
        : null;
      if (sync === null && on !== null) {
        notes.push(
          `${j.engine}${j.cached ? " reopened" : " opened"}: never within 1 ms of the host ` +
            `for 50 ms × 5 in the ${spanSec.toFixed(0)} s it played`,
        );
      }
    }
    figures.joinTrackMb = joinBytes / 2 ** 20;
    plots.push({
      name: "join",
      title: "PhaseLock sync — browser: lag behind the host after opening the page",
      xLabel: "time since the page was opened (s)",
      pairs: joinPairs,
    });

    if (webkit) {
      const wFrom = Math.max(0, Math.floor(r.sampleAt(webkit.fromMs)));
      const wTo = Math.floor(r.sampleAt(webkit.toMs)) - 4800;
      const wPairs = analysePairs(
        [r.channels[0].subarray(0, wTo), r.channels[webkit.k].subarray(0, wTo)],
        ["host", "webkit"],
        { fromSample: wFrom, maxLagMs: 250 },
      );
      const w = wPairs[0];
      figures.p50Ms_webkit = w.p50Ms;
      figures.p95Ms_webkit = w.p95Ms;
      figures.windows_webkit = w.windows;
      figures.meanLagMs_webkit = w.series.reduce((t, s) => t + s.lagMs, 0) /
        Math.max(1, w.series.length);
      const on = onsetAfter(r.channels[webkit.k], wFrom);
      figures.playToSoundMs_webkit = on === null ? null : r.realMsOf(on) - webkit.playing.rxMs!;
      plots.push({
        name: "webkit",
        title: "PhaseLock sync — browser: WebKitGTK against the host",
        pairs: wPairs,
      });
    }
    return {
      scenario: "browser",
      recordedSec: r.channels[0].length / 48000,
      pairs,
      overall: overall(pairs),
      figures,
      processes,
      pages: pageReports,
      plots,
      notes,
    };
  } catch (e) {
    // What the open pages were doing: a stalled download or decode shows here.
    const states: string[] = [];
    for (const p of open) {
      const d = await p.page.evaluate(
        "JSON.stringify({ phase: window.phaselock?.debug().phase, " +
          "tracks: window.phaselock?.debug().tracks, text: document.body.innerText.slice(-300) })",
      ).catch((err) => `${err}`);
      states.push(`${p.engine}: ${d}`);
    }
    if (states.length) (e as Error).message += `\nPages: ${states.join("\n")}`;
    throw e;
  } finally {
    await closeAll();
    host.kill();
    await host.exited;
    if (!recording) await rec.stop().catch(() => {});
    await pulse.stop();
  }
}

// ---------------- the measuring chain itself ----------------

/** Delays `x` by `d` samples (fractional) with a Hann-windowed sinc. */
export function fractionalDelay(x: Float32Array, d: number, taps = 64): Float32Array {
  const y = new Float32Array(x.length);
  const di = Math.floor(d), frac = d - di;
  const h = new Float64Array(2 * taps + 1);
  for (let m = -taps; m <= taps; m++) {
    const t = m - frac;
    const sinc = t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t);
    const w = 0.5 + 0.5 * Math.cos((Math.PI * t) / (taps + 1));
    h[m + taps] = sinc * w;
  }
  for (let n = 0; n < x.length; n++) {
    let s = 0;
    for (let m = -taps; m <= taps; m++) {
      const i = n - di - m;
      if (i >= 0 && i < x.length) s += x[i] * h[m + taps];
    }
    y[n] = s;
  }
  return y;
}

/**
 * Plays one 3-channel stream through the real PulseAudio bus — channel 0 a noise signal,
 * channel 1 the same delayed 0.1 ms, channel 2 delayed 2 ms — records the monitor and checks the
 * analysis reports exactly those delays. The spread of the reports is the chain's noise floor.
 */
async function measuringChain(opts: ScenarioOptions): Promise<ScenarioResult> {
  const seconds = opts.seconds ?? 10;
  const pulse = await startPulse(3);
  try {
    const rate = 48000, n = seconds * rate;
    const rnd = (() => {
      let s = 12345;
      return () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5;
    })();
    // Band-limited noise with a tremolo, like the bench tracks.
    const x = new Float32Array(n);
    let lp = 0;
    for (let i = 0; i < n; i++) {
      lp = 0.7 * lp + 0.3 * rnd();
      x[i] = lp * (0.6 + 0.4 * Math.sin((2 * Math.PI * 1.7 * i) / rate));
    }
    const inserted = [0, 0.1, 2];
    const chans = inserted.map((ms) => ms === 0 ? x : fractionalDelay(x, (ms * rate) / 1000));
    const inter = new Float32Array(n * 3);
    for (let i = 0; i < n; i++) for (let k = 0; k < 3; k++) inter[i * 3 + k] = chans[k][i];
    const rec = recordBus(pulse);
    await sleep(300);
    const play = new Deno.Command("pacat", {
      args: [
        "--playback",
        "-d",
        "bus",
        "--raw",
        "--format=float32le",
        `--rate=${rate}`,
        "--channels=3",
        "--channel-map=aux0,aux1,aux2",
        "--no-remix",
      ],
      env: pulse.env(0),
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const w = play.stdin.getWriter();
    await w.write(new Uint8Array(inter.buffer));
    await w.close();
    await play.status;
    await sleep(300);
    const r = await rec.stop();
    const pairs = analysePairs(r.channels, ["ref", "+0.1ms", "+2ms"]);
    const figures: Record<string, number | null> = {};
    for (const p of pairs.slice(0, 2)) {
      const want = p.pair.endsWith("+0.1ms") ? 0.1 : 2;
      const errs = p.series.map((s) => Math.abs(s.lagMs - want));
      const mean = p.series.reduce((t, s) => t + s.lagMs, 0) / Math.max(1, p.series.length);
      figures[`inserted${want}Ms_measuredMean`] = mean;
      figures[`inserted${want}Ms_errorP95`] = percentile(errs, 95);
      figures[`inserted${want}Ms_errorMax`] = errs.length ? Math.max(...errs) : null;
    }
    // For the chain, "error" is the distance of each reading from the inserted delay.
    const errs = pairs.slice(0, 2).flatMap((p) => {
      const want = p.pair.endsWith("+0.1ms") ? 0.1 : 2;
      return p.series.map((s) => Math.abs(s.lagMs - want));
    });
    return {
      scenario: "chain",
      recordedSec: r.channels[0].length / rate,
      pairs,
      overall: {
        windows: errs.length,
        p50Ms: percentile(errs, 50),
        p95Ms: percentile(errs, 95),
        maxMs: Math.max(...errs),
      },
      figures,
      processes: [],
      notes: [],
    };
  } finally {
    await pulse.stop();
  }
}

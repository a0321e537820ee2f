/**
 * The acoustic sync benchmark's machinery. Each scenario starts a private PulseAudio (a null
 * sink `bus` with one channel per device and a remap sink per device), puts the host and peers
 * in their own network namespaces on a bridge, runs real `phaselock` processes headless,
 * records the bus monitor, and measures the lag between every pair of devices by
 * cross-correlation over sliding windows. Used by `bench/sync.ts` and by the CI test.
 */
import { createLan, type Lan } from "../tests/harness/netns.ts";
import { AppProcess, type Event, procUsage } from "../tests/harness/proc.ts";
import { type BusRecording, recordBus, startPulse } from "../tests/harness/pulse.ts";
import { makeNoiseMp3 } from "../tests/harness/tracks.ts";
import { findTrackStart, lagSeries, percentile } from "../tests/harness/xcorr.ts";
import { decodeMp3 } from "../audio/decode.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realNow = () => performance.timeOrigin + performance.now();

export type ScenarioName =
  | "chain"
  | "lan"
  | "wan"
  | "long"
  | "transport"
  | "latejoin"
  | "evening";
export const SCENARIOS: ScenarioName[] = [
  "chain",
  "lan",
  "wan",
  "transport",
  "latejoin",
  "evening",
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
  opts: { fromSample?: number; hopSec?: number } = {},
): PairResult[] {
  const out: PairResult[] = [];
  const from = opts.fromSample ?? 0;
  for (let a = 0; a < ch.length; a++) {
    for (let b = a + 1; b < ch.length; b++) {
      const s = lagSeries(ch[a].subarray(from), ch[b].subarray(from), {
        windowSec: 0.25,
        hopSec: opts.hopSec ?? 0.25,
      });
      const series = s.points.map((p) => ({ atSec: p.atSec + from / 48000, lagMs: p.lagMs }));
      const abs = series.map((p) => Math.abs(p.lagMs));
      let maxStep = 0;
      for (let i = 1; i < series.length; i++) {
        maxStep = Math.max(maxStep, Math.abs(series[i].lagMs - series[i - 1].lagMs));
      }
      out.push({
        pair: `${names[a]}–${names[b]}`,
        windows: abs.length,
        p50Ms: percentile(abs, 50),
        p95Ms: percentile(abs, 95),
        maxMs: abs.length ? Math.max(...abs) : NaN,
        maxStepMs: maxStep,
        series,
      });
    }
  }
  return out;
}

function overall(pairs: PairResult[]) {
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

/** First time (sample) from `from` where b is within `tolMs` of a for 5 consecutive 50 ms windows. */
export function inSyncAfter(
  a: Float32Array,
  b: Float32Array,
  from: number,
  tolMs = 1,
): number | null {
  const win = 2400, hop = 480;
  let run = 0, runStart = 0;
  const s = lagSeries(a.subarray(from, from + 48000 * 8), b.subarray(from, from + 48000 * 8), {
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
  const seconds = opts.seconds ??
    { lan: 20, wan: 20, long: 600, transport: 0, latejoin: 12 }[name];
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

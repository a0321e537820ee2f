/**
 * The sync benchmark's `calibrate` scenario: calibration by the host's microphone, on the jam of
 * the CI test (tests/browser_peer_test.ts, "calibration by the host's microphone"). A native host
 * records the room (`--mic bus.monitor`: the private PulseAudio's bus recorded in mono, one
 * microphone hearing every speaker); a native peer hides 37 ms of output latency, a Chromium
 * page 120 ms.
 *
 * Five rounds. Each starts from no delay anywhere: the host is told `delay 0`, and the peers are
 * fresh — a new native process with an empty config folder and a new browser context (empty
 * storage) — because a peer keeps the delay a calibration gave it and only a calibration can
 * change it from the host. Each round plays the noise track, pauses, calibrates, resumes, and
 * measures every device against the host in the recording of the bus, before and after.
 *
 * Everything runs on loopback, as the `browser` scenario does (the page reaches the host there);
 * the native peer keeps the rig's simulated clock error (+3.2 s, +80 ppm) so its clock is still
 * estimated over the network.
 */
import type { Page } from "playwright-core";
import { planCalibration } from "../session/calibration.ts";
import type { CalibratedDevice } from "../session/commands.ts";
import { launchChromium, type LaunchedChromium } from "../tests/harness/browser.ts";
import { freePort } from "../tests/harness/ports.ts";
import { AppProcess, type Event, procUsage } from "../tests/harness/proc.ts";
import {
  type BusRecording,
  type PrivatePulse,
  recordBus,
  startPulse,
} from "../tests/harness/pulse.ts";
import { lagsBehind, percentile } from "../tests/harness/xcorr.ts";
import {
  noiseTrack,
  overall,
  pairOf,
  type PairResult,
  type ProcessUsage,
  type ScenarioOptions,
  type ScenarioResult,
} from "./sync_rig.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realNow = () => performance.timeOrigin + performance.now();

/** The issue's goals, printed beside the figures. */
export const CALIBRATE_GOALS = {
  /** Every device against the host at the microphone after calibration, p95 |lag| (ms). */
  afterP95Ms: 0.5,
  /** A calibration of six devices, command to delays set (ms). */
  sixDevicesMs: 15000,
} as const;

const ROUNDS = 5;
/** The main plot's time axis: each round's measurement after calibrating, one after another. */
export const CALIBRATE_X_LABEL =
  "after calibrating: seconds from resume + 1 s, the five rounds one after another";
/** Seconds of music measured before and after calibrating (`--seconds` changes it). */
const MEASURE_SEC = 10;
/** Joined → play: a young page's audio context settles (as in the CI test). */
const PAGE_SETTLE_MS = 4000;
/** Play → measured: a page's timing swings for its first seconds (the CI test's SETTLE_MS). */
const PLAY_SETTLE_MS = 8000;
/** Resume → measured: the resumed stream has started on every device. */
const RESUME_SETTLE_MS = 1000;

/** The peers, as in the CI test: each hides an output latency that only a microphone hears. */
const PEERS = [
  { key: "native", name: "Slow speaker", sink: 1, hiddenMs: 37 },
  { key: "chromium", name: "Slow phone", sink: 2, hiddenMs: 120 },
] as const;
const HOST_NAME = "Host";
/** The rig's first peer clock error (as `lan`'s peer1). */
const SIM_CLOCK = { offsetMs: 3200, skewPpm: 80 };

/** How long calibrating `n` devices listens by plan (command → end of the last probe's span). */
export function planMs(n: number): number {
  const devices = Array.from({ length: n }, (_, i) => ({
    name: `d${i}`,
    host: i === 0,
    delayMs: 0,
  }));
  return planCalibration(devices, 0).endHostMs;
}

/** What one round measured for one peer. */
interface PeerRound {
  before: { atSec: number; lagMs: number }[];
  after: { atSec: number; lagMs: number }[];
  calibrated: CalibratedDevice | null;
}

/** One round: each peer's lags, the calibration's events, what to note. */
interface RoundResult {
  peers: PeerRound[];
  /** The calibration's `done` event, or null when it was refused (`refused`). */
  done: Event | null;
  refused: Event | null;
  /** Its first event: `running` (with `expectedMs`), or the refusal. */
  running: Event;
  warnings: string[];
  recordedSec: number;
}

/** A headless host on loopback recording the room, and the Chromium the pages open in. */
interface Jam {
  host: AppProcess;
  url: string;
  chrome: LaunchedChromium;
  tmp: string;
  port: number;
}

/** Sends `line` and waits for the first event after it that matches `pred`. */
async function command(
  host: AppProcess,
  line: string,
  pred: (e: Event) => boolean,
  what = `"${line}"`,
  timeoutMs = 15000,
): Promise<Event> {
  const from = host.events.length;
  await host.send(line);
  return await after(host, from, pred, what, timeoutMs);
}

function after(
  host: AppProcess,
  from: number,
  pred: (e: Event) => boolean,
  what: string,
  timeoutMs = 30000,
): Promise<Event> {
  return host.waitFor((e) => pred(e) && host.events.indexOf(e) >= from, timeoutMs, what);
}

type PeerList = { name: string; clock: string; speakerDelayMs: number }[];

/**
 * One round: delays back to zero, fresh peers join, the track plays (before), pauses,
 * calibration, resumes (after), stops; the peers leave. Returns the recording's lags and what
 * the calibration said.
 */
async function runRound(
  jam: Jam,
  round: number,
  pulse: PrivatePulse,
  seconds: number,
  log: (l: string) => void,
): Promise<RoundResult> {
  const { host } = jam;
  await command(
    host,
    "delay 0",
    (e) => e.type === "device" && e.speakerDelayMs === 0,
    "the host's delay set to 0",
  );
  const from = host.events.length;
  const native = new AppProcess([
    ...["join", "--headless", `127.0.0.1:${jam.port}`, "--as", PEERS[0].name],
    ...["--audio", "pulse", "--cache-dir", `${jam.tmp}/cache`],
    ...["--config-dir", `${jam.tmp}/round${round}-config`],
    ...["--sim-clock-offset-ms", String(SIM_CLOCK.offsetMs)],
    ...["--sim-clock-skew-ppm", String(SIM_CLOCK.skewPpm)],
    ...["--sim-output-latency-ms", String(PEERS[0].hiddenMs)],
  ], { env: pulse.env(PEERS[0].sink) });
  let page: Page | null = null;
  let rec: { stop(): Promise<BusRecording> } | null = null;
  try {
    page = await jam.chrome.page(`${jam.url}?simOutputLatencyMs=${PEERS[1].hiddenMs}`);
    await page.getByLabel("Your name").fill(PEERS[1].name);
    await page.getByRole("button", { name: "Join" }).click();
    for (const p of PEERS) {
      await after(
        host,
        from,
        (e) => e.type === "track-ready" && e.peer === p.name,
        `${p.name} to have the track ready`,
        60000,
      );
    }
    await after(
      host,
      from,
      (e) =>
        e.type === "peers" && Array.isArray(e.peers) && e.peers.length === PEERS.length &&
        (e.peers as PeerList).every((p) => p.clock === "green" && p.speakerDelayMs === 0),
      "both peers' clocks locked, with no delay",
      30000,
    );
    rec = recordBus(pulse);
    await sleep(PAGE_SETTLE_MS);

    const started = await command(host, "play", (e) => e.type === "playing");
    await sleep(PLAY_SETTLE_MS + seconds * 1000);
    const paused = await command(host, "pause", (e) => e.type === "paused");

    // Paused: the room is quiet while the microphone listens.
    const calFrom = host.events.length;
    await host.send("calibrate");
    const running = await after(
      host,
      calFrom,
      (e) => e.type === "calibration",
      "the calibration to start",
      10000,
    );
    const end = running.state === "running"
      ? await after(
        host,
        calFrom,
        (e) => e.type === "calibration" && e.state !== "running",
        "the calibration's result",
        30000,
      )
      : running;
    const done = end.state === "done" ? end : null;
    const cal = (done?.devices ?? []) as CalibratedDevice[];
    const warnings: string[] = [];
    if (done) {
      // The peers apply their delays and report them back before the music resumes.
      await after(
        host,
        calFrom,
        (e) =>
          e.type === "peers" && Array.isArray(e.peers) &&
          (e.peers as PeerList).every((p) =>
            Math.abs(p.speakerDelayMs - (cal.find((d) => d.name === p.name)?.delayMs ?? NaN)) <
              0.01
          ),
        "the peers' new delays",
        5000,
      ).catch(() => warnings.push(`round ${round}: a peer did not report its new delay in 5 s`));
    }
    const resumed = await command(host, "resume", (e) => e.type === "playing");
    await sleep(RESUME_SETTLE_MS + seconds * 1000 + 200);
    const ended = await command(host, "pause", (e) => e.type === "paused");
    await command(host, "stop", (e) => e.type === "stopped");
    const recording = await rec.stop();
    rec = null;
    log(
      `calibrate: round ${round} ${
        done ? `calibrated in ${done.tookMs} ms` : `refused: ${end.message}`
      }`,
    );

    const sec = (ms: number) => recording.sampleAt(ms) / recording.rateHz;
    const beforeFrom = sec(started.atHostMs as number) + PLAY_SETTLE_MS / 1000;
    const afterFrom = sec(resumed.atHostMs as number) + RESUME_SETTLE_MS / 1000;
    const peers = PEERS.map((p) => {
      const calibrated = cal.find((d) => d.name === p.name) ?? null;
      const before = lagsBehind(
        recording,
        p.sink,
        p.hiddenMs,
        beforeFrom,
        sec(paused.atHostMs as number) - 0.1,
      );
      const afterLags = lagsBehind(
        recording,
        p.sink,
        0,
        afterFrom,
        sec(ended.atHostMs as number) - 0.1,
      );
      return { before, after: afterLags, calibrated };
    });
    return {
      peers,
      done,
      refused: done ? null : end,
      running,
      warnings,
      recordedSec: recording.channels[0].length / recording.rateHz,
    };
  } catch (e) {
    const quiet = new Set(["peers", "transfer", "health", "clock"]);
    (e as Error).message += `\nHost: ${
      JSON.stringify(host.events.filter((x) => !quiet.has(x.type)).slice(-12)).slice(0, 2500)
    }\nNative peer: ${native.stderr.slice(-800)}`;
    throw e;
  } finally {
    if (rec) await rec.stop().catch(() => {});
    const left = host.events.length;
    await native.quit();
    await page?.context().close().catch(() => {});
    // Both gone before the next round's peers take the same names.
    await after(
      host,
      left,
      (e) => e.type === "peers" && Array.isArray(e.peers) && e.peers.length === 0,
      "the peers to leave",
      15000,
    ).catch(() => {});
  }
}

const range = (xs: number[]) => xs.length ? [Math.min(...xs), Math.max(...xs)] : [null, null];

/** Five rounds of calibration on the CI test's jam; figures before and after each. */
export async function calibrateScenario(opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const log = opts.log ?? (() => {});
  const cacheDir = opts.cacheDir ?? `${ROOT}bench/.cache`;
  const seconds = opts.seconds ?? MEASURE_SEC;
  // Settle + before + after, with room to spare: every round plays from the start.
  const track = await noiseTrack(cacheDir, "a", Math.max(45, Math.ceil(2 * seconds + 25)));
  log("calibrate: track ready");
  const figures: Record<string, number | null> = {};
  const notes: string[] = [];
  const pulse = await startPulse(3);
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-calibrate-" });
  const port = freePort();
  const host = new AppProcess([
    ...["host", "--headless", "--name", "Bench", "--as", HOST_NAME, "--port", String(port)],
    ...["--bind", "127.0.0.1", "--audio", "pulse", "--no-advertise"],
    ...["--mic", pulse.micSource, "--config-dir", `${tmp}/host-config`, track],
  ], { env: pulse.env(0) });
  let chrome: LaunchedChromium | null = null;
  try {
    await host.waitFor((e) => e.type === "session", 60000, "host session");
    await host.waitFor((e) => e.type === "track-ready" && !e.peer, 60000, "the track on the host");
    chrome = await launchChromium({ pulse: { env: pulse.env(PEERS[1].sink) } });
    const jam = { host, url: `http://127.0.0.1:${port}/`, chrome, tmp, port };

    const rounds: RoundResult[] = [];
    for (let r = 1; r <= ROUNDS; r++) rounds.push(await runRound(jam, r, pulse, seconds, log));

    const u = await procUsage(host.child.pid);
    const processes: ProcessUsage[] = u
      ? [{
        name: "host",
        cpuPercent: (100 * u.cpuSec) / ((realNow() - host.spawnedMs) / 1000),
        ...u,
      }]
      : [];
    const errors = chrome.consoleErrors();
    if (errors.length) notes.push(`page console errors: ${errors.slice(0, 5).join(" | ")}`);
    await host.quit();

    // Per round and peer.
    const tookMs: number[] = [];
    const overheadMs: number[] = [];
    rounds.forEach((rd, i) => {
      const r = i + 1;
      const took = rd.done ? rd.done.tookMs as number : null;
      figures[`r${r}_tookMs`] = took;
      figures[`r${r}_expectedMs`] = rd.running.expectedMs as number ?? null;
      if (took !== null) {
        tookMs.push(took);
        overheadMs.push(took - planMs(1 + PEERS.length));
      }
      notes.push(...rd.warnings);
      if (rd.refused) notes.push(`round ${r}: calibration refused: ${rd.refused.message}`);
      const hostCal = (rd.done?.devices as CalibratedDevice[] | undefined)?.find((d) => d.host);
      figures[`r${r}_confidence_host`] = hostCal?.confidence ?? null;
      const words: string[] = [];
      PEERS.forEach((p, j) => {
        const pr = rd.peers[j];
        const b = pr.before.map((x) => x.lagMs), a = pr.after.map((x) => x.lagMs);
        const k = (what: string) => `r${r}_${what}_${p.key}`;
        figures[k("beforeWindows")] = b.length;
        figures[k("beforeMedianMs")] = b.length ? percentile(b, 50) : null;
        figures[k("beforeP95Ms")] = b.length ? percentile(b.map(Math.abs), 95) : null;
        figures[k("latencyMs")] = pr.calibrated?.latencyMs ?? null;
        figures[k("confidence")] = pr.calibrated?.confidence ?? null;
        figures[k("delayMs")] = pr.calibrated?.delayMs ?? null;
        figures[k("afterWindows")] = a.length;
        figures[k("afterMedianMs")] = a.length ? percentile(a, 50) : null;
        figures[k("afterP95Ms")] = a.length ? percentile(a.map(Math.abs), 95) : null;
        figures[k("afterMaxMs")] = a.length ? Math.max(...a.map(Math.abs)) : null;
        const f = (v: number | null | undefined, d = 2) =>
          v === null || v === undefined ? "n/a" : v.toFixed(d);
        words.push(
          `${p.name}: before ${f(figures[k("beforeMedianMs")])} ms (p95 |lag| ${
            f(figures[k("beforeP95Ms")])
          }), measured ${f(pr.calibrated?.latencyMs)} ms (confidence ${
            f(pr.calibrated?.confidence)
          }), delay ${f(pr.calibrated?.delayMs)}, after median ${
            f(figures[k("afterMedianMs")])
          } p95 ${f(figures[k("afterP95Ms")])} ms (${a.length} windows)`,
        );
      });
      notes.push(`round ${r} (${took ?? "refused"} ms): ${words.join("; ")}`);
    });

    // Across rounds.
    const across = (what: string, key: string) =>
      rounds.map((_, i) => figures[`r${i + 1}_${what}_${key}`]).filter((v): v is number =>
        typeof v === "number"
      );
    for (const p of PEERS) {
      figures[`hiddenMs_${p.key}`] = p.hiddenMs;
      for (const what of ["latencyMs", "afterP95Ms", "delayMs", "confidence"]) {
        const [lo, hi] = range(across(what, p.key));
        figures[`${what}Min_${p.key}`] = lo;
        figures[`${what}Max_${p.key}`] = hi;
      }
      // How far off the delay set was: the after-median furthest from 0 over the rounds.
      const off = across("afterMedianMs", p.key).map(Math.abs);
      figures[`afterMedianAbsMaxMs_${p.key}`] = off.length ? Math.max(...off) : null;
      for (const what of ["beforeMedianMs", "beforeP95Ms", "afterMedianMs"]) {
        const xs = across(what, p.key);
        figures[`${what}_${p.key}`] = xs.length ? percentile(xs, 50) : null;
      }
    }
    const [confHostLo] = range(
      rounds.map((_, i) => figures[`r${i + 1}_confidence_host`]).filter((v): v is number =>
        typeof v === "number"
      ),
    );
    figures.confidenceMin_host = confHostLo;
    figures.rounds = ROUNDS;
    figures.refusals = rounds.filter((rd) => !rd.done).length;
    figures.devices = 1 + PEERS.length;
    [figures.tookMsMin, figures.tookMsMax] = range(tookMs);
    figures.tookMsMedian = tookMs.length ? percentile(tookMs, 50) : null;
    figures.planMs_3 = planMs(3);
    figures.planMs_6 = planMs(6);
    // Microphone start, analysis and sending the delays, as measured with three devices.
    figures.overheadMsMedian = overheadMs.length ? percentile(overheadMs, 50) : null;
    figures.sixDevicesEstimateMs = figures.overheadMsMedian === null
      ? null
      : figures.planMs_6 + figures.overheadMsMedian;
    const afterAll = rounds.flatMap((rd) => rd.peers.flatMap((p) => p.after.map((x) => x.lagMs)));
    figures.afterP95MsAll = afterAll.length ? percentile(afterAll.map(Math.abs), 95) : null;
    const p95s = PEERS.flatMap((p) => across("afterP95Ms", p.key));
    figures.afterGoalMet = p95s.filter((v) => v <= CALIBRATE_GOALS.afterP95Ms).length;
    figures.afterGoalChecks = ROUNDS * PEERS.length;
    figures.afterP95MsWorstRound = Math.max(
      ...PEERS.map((p) => figures[`afterP95MsMax_${p.key}`] ?? Infinity),
    );

    // The plot: each peer against the host after calibration, the rounds one after another.
    const span = seconds + RESUME_SETTLE_MS / 1000;
    const pairs: PairResult[] = PEERS.map((p, j) =>
      pairOf(
        `host–${p.name} (${p.hiddenMs} ms hidden)`,
        rounds.flatMap((rd, i) =>
          rd.peers[j].after.map((x) => ({ atSec: i * span + x.atSec, lagMs: x.lagMs }))
        ),
      )
    );
    return {
      scenario: "calibrate",
      recordedSec: rounds.reduce((t, rd) => t + rd.recordedSec, 0),
      pairs,
      overall: overall(pairs),
      figures,
      processes,
      plots: [],
      notes,
    };
  } finally {
    await chrome?.close();
    host.kill();
    await host.exited;
    await pulse.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** The scenario's part of its summary line, each figure beside its goal. */
export function calibrateSummary(fig: ScenarioResult["figures"]): string[] {
  const f = (v: number | null | undefined, d = 2) =>
    v === null || v === undefined || !Number.isFinite(v) ? "n/a" : v.toFixed(d);
  const g = CALIBRATE_GOALS;
  const met = (v: number | null | undefined, goal: number) =>
    v === null || v === undefined || !Number.isFinite(v)
      ? "not measured"
      : v <= goal
      ? "met"
      : "missed";
  const out = [`${f(fig.rounds, 0)} rounds, ${f(fig.refusals, 0)} refused`];
  for (const p of PEERS) {
    const k = (w: string) => fig[`${w}_${p.key}`];
    out.push(
      `${p.name} (hidden ${p.hiddenMs} ms): before ${f(k("beforeMedianMs"))} ms (p95 |lag| ${
        f(k("beforeP95Ms"))
      }), measured ${f(k("latencyMsMin"))}–${f(k("latencyMsMax"))} ms (confidence ≥ ${
        f(k("confidenceMin"))
      }), delay set ${f(k("delayMsMin"))}–${f(k("delayMsMax"))}, after median ${
        f(k("afterMedianMs"), 3)
      } ms (furthest round ${f(k("afterMedianAbsMaxMs"), 3)}), p95 ${f(k("afterP95MsMin"), 3)}–${
        f(k("afterP95MsMax"), 3)
      } ms`,
    );
  }
  out.push(
    `after calibration, every device vs host at the microphone: worst round p95 ${
      f(fig.afterP95MsWorstRound, 3)
    } ms, ${f(fig.afterGoalMet, 0)} of ${
      f(fig.afterGoalChecks, 0)
    } device-rounds within [goal ≤ ${g.afterP95Ms} ms: ${
      met(fig.afterP95MsWorstRound, g.afterP95Ms)
    }]`,
    `calibration took ${f((fig.tookMsMin ?? NaN) / 1000)}–${
      f((fig.tookMsMax ?? NaN) / 1000)
    } s for ${f(fig.devices, 0)} devices (plan ${f((fig.planMs_3 ?? NaN) / 1000)} s)`,
    `6 devices: ${f((fig.planMs_6 ?? NaN) / 1000)} s by plan, ≈ ${
      f((fig.sixDevicesEstimateMs ?? NaN) / 1000)
    } s with the overhead measured for 3 [goal ≤ ${g.sixDevicesMs / 1000} s: ${
      met(fig.sixDevicesEstimateMs, g.sixDevicesMs)
    } by plan, measured for 3]`,
  );
  return out;
}

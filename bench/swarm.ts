/**
 * The sync benchmark's `swarm` scenario: swarm mode on the CI test's rig (tests/harness/swarm.ts
 * — `phaselock serve --headless` in a network namespace of its own, pages playing into their
 * own sinks of a private PulseAudio, native members from swarm/bot.ts).
 *
 * 1. Sync and start-up: three Chromium pages and a Firefox page type the key; each one's Join →
 *    clock locked is read from its engine's marks. The first shares a noise track, selects it and
 *    presses Play; the bus recording gives every pair's lag (Chromium pairs, and pairs with
 *    Firefox).
 * 2. Spreading a file: a 10 MB file offered to 1 member, then to 19, every member's uplink capped
 *    at 1 MB/s (a phone on Wi-Fi; on one machine every member otherwise shares loopback and the
 *    same two cores). A star (the sharer uploads to each) would take 19 × the one transfer; the
 *    swarm's reseeding makes it a small multiple. Meanwhile the server's interface counts what
 *    it received: control only (no message type can carry file data).
 */
import { makeManifest } from "../swarm/manifest.ts";
import { recordBus } from "../tests/harness/pulse.ts";
import { realNowMs, type SwarmBots, type SwarmPage, SwarmRig } from "../tests/harness/swarm.ts";
import { percentile } from "../tests/harness/xcorr.ts";
import {
  analysePairs,
  noiseTrack,
  overall,
  type PairResult,
  type ScenarioOptions,
  type ScenarioResult,
} from "./sync_rig.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The goals, printed beside the figures. */
export const SWARM_GOALS = {
  chromiumP95Ms: 1,
  mixedP95Ms: 2,
  keyToSyncMs: 1000,
  distributionRatio: 3,
} as const;

/** Seconds of playing measured (`--seconds` changes it). */
const MEASURE_SEC = 20;
/** Play → measuring: the pages' young audio contexts settle (as in the browser scenario). */
const SETTLE_SEC = 4;
const SPREAD_BYTES = 10_000_000;
const UPLINK_MBPS = 1;

/** Sync, and Join → clock locked, with browser pages. */
async function playing(opts: ScenarioOptions, log: (l: string) => void) {
  const rig = await SwarmRig.start({ devices: 4 });
  try {
    const key = "phaselock bench swarm";
    const track = await noiseTrack(opts.cacheDir ?? "bench/.cache", "swarm", 90);
    const bytes = await Deno.readFile(track);
    const fileId = makeManifest("Noise.mp3", bytes).id;
    const names = ["Chromium A", "Chromium B", "Chromium C", "Firefox"];
    const engines = ["chromium", "chromium", "chromium", "firefox"] as const;
    const pages: SwarmPage[] = [];
    // One after another: the first in directs, and each Join is timed alone.
    for (const [i, e] of engines.entries()) pages.push(await rig.openAndJoin(e, i, key, names[i]));
    const keyToSync: number[] = [];
    for (const p of pages) {
      const m = (await p.debug()).marks;
      keyToSync.push((m.lockedMs ?? NaN) - (m.joinMs ?? NaN));
    }
    log(`Join → clock locked: ${keyToSync.map((x) => x.toFixed(0)).join(", ")} ms`);
    const [a] = pages;
    // Recording from before the file is shared: a recorder joining the sound server re-times
    // its sinks, and every page's output steps as it starts (tests/swarm_test.ts).
    const rec = recordBus(rig.pulse!);
    await a.share("Noise.mp3", bytes);
    const has = `v.files.some((f) => f.id === ${JSON.stringify(fileId)} && f.playable)`;
    await Promise.all(pages.map((p) => p.waitFor(has, 60_000, "the file ready")));
    await a.page.click({ text: "Select" });
    await a.waitFor(`v.transport.file === ${JSON.stringify(fileId)}`, 5000, "the selection");
    await a.page.click({ text: "Play" });
    await a.waitFor("v.transport.playing", 20_000, "playing");
    const t = (await a.debug()).transport;
    const seconds = opts.seconds ?? MEASURE_SEC;
    await sleep(Math.max(0, t.atMs + (SETTLE_SEC + seconds) * 1000 + 500 - realNowMs()));
    const r = await rec.stop();
    const from = r.sampleAt(t.atMs + SETTLE_SEC * 1000);
    const to = r.sampleAt(t.atMs + (SETTLE_SEC + seconds) * 1000);
    const ch = r.channels.slice(0, 4).map((c) => c.subarray(0, to));
    const pairs = analysePairs(ch, names, { fromSample: from });
    return { pairs, keyToSync, seconds };
  } finally {
    await rig.stop();
  }
}

/** Bots only: time for a file to reach every member from the moment it is offered. */
async function spread(leechers: number, file: string, log: (l: string) => void) {
  const rig = await SwarmRig.start({ devices: 0 });
  try {
    const key = `phaselock bench spread ${leechers}`;
    const seeder = rig.startBots({ key, count: 1, name: "Seeder", uplinkMBps: UPLINK_MBPS });
    await seeder.waitAll((s) => s.phase === "joined", 30_000, "joined");
    // Several processes, as several phones would be (and so the two cores share the work).
    const groups: SwarmBots[] = [];
    for (let left = leechers, g = 0; left > 0; g++) {
      const count = Math.min(left, 5);
      groups.push(rig.startBots({ key, count, name: `L${g}`, uplinkMBps: UPLINK_MBPS }));
      left -= count;
    }
    const all = [seeder, ...groups];
    await Promise.all(
      all.map((b) => b.waitAll((s) => s.links === leechers, 120_000, "a full mesh")),
    );
    const rx0 = await rig.counters();
    const t0 = realNowMs();
    await seeder.send(`share 0 ${file}`);
    const id = makeManifest("x", await Deno.readFile(file)).id;
    await Promise.all(
      groups.map((b) =>
        b.waitAll((s) => s.files.some((f) => f.id === id && f.seeded), 600_000, "seeded")
      ),
    );
    const sec = (realNowMs() - t0) / 1000;
    const rx1 = await rig.counters();
    const sent = seeder.statuses()[0]?.stats.bytesSent ?? NaN;
    log(
      `${leechers} member(s): ${sec.toFixed(1)} s; the sharer uploaded ${
        (sent / SPREAD_BYTES).toFixed(2)
      } × the file; server received ${rx1.rxBytes - rx0.rxBytes} bytes meanwhile`,
    );
    return { sec, sharerCopies: sent / SPREAD_BYTES, serverRxBytes: rx1.rxBytes - rx0.rxBytes };
  } finally {
    await rig.stop();
  }
}

export async function swarmScenario(opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const log = opts.log ?? (() => {});
  const { pairs, keyToSync, seconds } = await playing(opts, log);
  const dir = await Deno.makeTempDir({ prefix: "phaselock-spread-" });
  try {
    const file = `${dir}/ten-megabytes.mp3`;
    const bytes = new Uint8Array(SPREAD_BYTES);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, Math.min(bytes.length, i + 65536)));
    }
    await Deno.writeFile(file, bytes);
    const one = await spread(1, file, log);
    const nineteen = await spread(19, file, log);
    const chromium = pairs.filter((p) => !p.pair.includes("Firefox"));
    const p95 = (ps: PairResult[]) => overall(ps).p95Ms;
    return {
      scenario: "swarm",
      recordedSec: seconds,
      pairs,
      overall: overall(pairs),
      figures: {
        p95Ms_chromium: p95(chromium),
        p95Ms_mixed: p95(pairs),
        p95Ms_firefox: p95(pairs.filter((p) => p.pair.includes("Firefox"))),
        keyToSyncMedianMs: percentile(keyToSync, 50),
        keyToSyncMaxMs: Math.max(...keyToSync),
        oneTransferSec: one.sec,
        nineteenSec: nineteen.sec,
        distributionRatio: nineteen.sec / one.sec,
        sharerUploadCopies: nineteen.sharerCopies,
        serverRxBytesDuringSpread: nineteen.serverRxBytes,
        fileBytesDelivered: 19 * SPREAD_BYTES,
        audioBytesThroughServer: 0,
      },
      processes: [],
      notes: [
        `Pages: 3 Chromium + 1 Firefox, measured ${SETTLE_SEC}–${SETTLE_SEC + seconds} s after ` +
        "the start; sync from the bus recording.",
        `Spreading: a ${SPREAD_BYTES / 1e6} MB file, every member's uplink capped at ` +
        `${UPLINK_MBPS} MB/s (bot --uplink-mbps); timed from the share to the last member seeded.`,
        "audioBytesThroughServer is 0 by construction: the server relays only validated control " +
        "messages (no field can carry file data; rates capped); serverRxBytesDuringSpread is what " +
        "its interface counted meanwhile.",
      ],
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The summary line's parts: each figure beside its goal. */
export function swarmSummary(fig: Record<string, number | null>): string[] {
  const f = (x: number | null | undefined, d = 2) => (x == null ? "–" : x.toFixed(d));
  return [
    `Chromium p95 ${f(fig.p95Ms_chromium)} ms (goal ≤ ${SWARM_GOALS.chromiumP95Ms})`,
    `mixed p95 ${f(fig.p95Ms_mixed)} ms (goal ≤ ${SWARM_GOALS.mixedP95Ms})`,
    `Join → clock locked median ${f(fig.keyToSyncMedianMs, 0)} / max ${
      f(fig.keyToSyncMaxMs, 0)
    } ms (goal ≤ ${SWARM_GOALS.keyToSyncMs})`,
    `10 MB to 19 members ${f(fig.nineteenSec, 1)} s = ${f(fig.distributionRatio, 1)} × one ` +
    `transfer (${f(fig.oneTransferSec, 1)} s; goal ≤ ${SWARM_GOALS.distributionRatio}×)`,
    `server received ${f((fig.serverRxBytesDuringSpread ?? NaN) / 1e3, 0)} kB while 190 MB moved`,
  ];
}

/**
 * A session's life, heard: host and peers in their own network namespaces play into a private
 * PulseAudio whose bus is recorded, one channel per device. The recording shows where each
 * track starts on each device, so gapless auto-advance and rejoining mid-song are checked from
 * what was actually played, not from what the processes say.
 */
import { assertEquals, assertTrue } from "./assert.ts";
import { createLan, type Lan } from "./harness/netns.ts";
import { AppProcess, type Event } from "./harness/proc.ts";
import { type BusRecording, recordBus, startPulse } from "./harness/pulse.ts";
import { makeNoiseMp3 } from "./harness/tracks.ts";
import { findTrackStart } from "./harness/xcorr.ts";
import { decodeMp3 } from "../audio/decode.ts";
import { inSyncAfter } from "../bench/sync_rig.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realNow = () => performance.timeOrigin + performance.now();

/** Pulse, a LAN of namespaces and a recorder for `devices` devices; torn down by `destroy`. */
async function rig(devices: number) {
  const pulse = await startPulse(devices);
  let lan: Lan | null = null;
  try {
    lan = await createLan(devices);
  } catch (e) {
    await pulse.stop();
    throw e;
  }
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-life-" });
  const rec = recordBus(pulse);
  const procs: AppProcess[] = [];
  const l = lan;
  return {
    tmp,
    procs,
    rec,
    host(files: string[]) {
      const p = new AppProcess([
        ...["host", "--headless", "--name", "Life", "--as", "Host", "--audio", "pulse"],
        ...["--no-advertise", "--config-dir", `${tmp}/cfg0`, ...files],
      ], { env: pulse.env(0), prefix: l.exec(0) });
      procs.push(p);
      return p;
    },
    peer(k: number, name: string, cache: string) {
      const p = new AppProcess([
        ...["join", "--headless", `${l.ip(0)}:7420`, "--as", name, "--audio", "pulse"],
        ...["--cache-dir", `${tmp}/${cache}`, "--config-dir", `${tmp}/cfg${k}`],
      ], { env: pulse.env(k), prefix: l.exec(k) });
      procs.push(p);
      return p;
    },
    async destroy() {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      await rec.stop().catch(() => {});
      await l.destroy();
      await pulse.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test({
  name: "a queue plays through in order, each track starting on the frame the last one ended, " +
    "on every device at the same moment; the next track is ready before it is needed",
  ...opts,
  async fn() {
    const r = await rig(3);
    try {
      const names = ["a", "b", "c", "d"];
      const files = names.map((n) => `${r.tmp}/${n}.mp3`);
      for (const f of files) await makeNoiseMp3(f, 3);
      const pcm = await Promise.all(
        files.map(async (f, i) => decodeMp3(await Deno.readFile(f), { id: names[i], fileName: f })),
      );
      const host = r.host(files);
      await host.waitFor((e) => e.type === "queue" && (e.tracks as unknown[]).length === 4, 30000);
      const peers = [r.peer(1, "P1", "c1"), r.peer(2, "P2", "c2")];
      // Reorder and prune: a b c d → a c b d → a c b.
      await host.send("move 3 2");
      await host.send("remove 4");
      await host.waitFor((e) => e.type === "notice" && /Removed "d"/.test(e.message as string));
      const q = host.events.findLast((e) => e.type === "queue")!;
      const order = q.tracks as { fileName: string; id: string }[];
      assertEquals(order.map((t) => t.fileName), ["a.mp3", "c.mp3", "b.mp3"]);
      const ids = order.map((t) => t.id);
      for (const name of ["P1", "P2"]) {
        await host.waitFor(
          (e) => e.type === "track-ready" && e.peer === name && e.trackId === ids[0],
          30000,
        );
      }
      await host.waitFor(
        (e) =>
          e.type === "peers" && (e.peers as { clock: string }[]).length === 2 &&
          (e.peers as { clock: string }[]).every((p) => p.clock === "green"),
        20000,
        "clocks locked",
      );
      await sleep(1500);
      await host.send("play");
      // Three tracks of 3 s each, then the end of the queue.
      await host.waitFor(
        (e) => e.type === "notice" && /End of the queue/.test(e.message as string),
        20000,
        "end of queue",
      );
      await host.send("status");
      const st = await host.waitFor((e) => e.type === "status", 5000, "status");
      const sinkPpm = (st.audio as { deviceRatePpm: number }).deviceRatePpm;
      await sleep(500);
      const rec: BusRecording = await r.rec.stop();

      // Order, as every device played it.
      for (const p of [host, ...peers]) {
        const started = p.events.filter((e) => e.type === "started").map((e) => e.trackId);
        assertEquals(started, ids, "tracks started in queue order");
      }
      // Each transition was ready in advance on both peers (no waiting for a transfer).
      const playing = host.events.filter((e) => e.type === "playing");
      assertEquals(playing.map((e) => e.trackId), ids);
      for (let i = 1; i < 3; i++) {
        for (const name of ["P1", "P2"]) {
          const ready = host.events.find((e: Event) =>
            e.type === "track-ready" && e.peer === name && e.trackId === ids[i]
          );
          assertTrue(ready, `${name} had track ${i + 1}`);
          assertTrue(
            ready.rxMs! < (playing[i].atHostMs as number) - 1000,
            `${name} had track ${i + 1} at least 1 s before it started`,
          );
        }
      }
      // From the recording: where each track begins on each device.
      const byFile = Object.fromEntries(names.map((n, i) => [`${n}.mp3`, pcm[i]]));
      const tracks = order.map((t) => byFile[t.fileName]);
      const report: string[] = [];
      const starts: number[][] = [];
      for (let k = 0; k < 3; k++) {
        const ch = rec.channels[k];
        const row: number[] = [];
        let approx = rec.sampleAt(playing[0].atHostMs as number);
        for (let i = 0; i < 3; i++) {
          const hit = findTrackStart(ch, tracks[i], approx);
          assertTrue(
            hit.peak > 0.5,
            `device ${k} track ${i + 1} found (peak ${hit.peak.toFixed(2)})`,
          );
          row.push(hit.at);
          approx = hit.at + tracks[i].left.length;
        }
        starts.push(row);
        for (let i = 1; i < 3; i++) {
          // The gap between the end of the previous track and the start of this one.
          const gapMs = (row[i] - (row[i - 1] + tracks[i - 1].left.length)) / 48;
          // The recording's clock is the null sink, which runs `sinkPpm` fast against the system
          // clock the devices place frames by: a perfect transition shows that much "gap".
          const trueGapMs = gapMs - (tracks[i - 1].left.length / 48) * sinkPpm * 1e-6;
          report.push(
            `dev${k} ${i}→${i + 1} gap ${gapMs.toFixed(3)} ms in sink samples, ` +
              `${trueGapMs.toFixed(3)} ms after the sink's ${sinkPpm.toFixed(1)} ppm`,
          );
          // Typically within ±0.15 ms, but in full test runs on this loaded 2-core VM one
          // transition in a few dozen lands off by 0.4–1.6 ms (seen: −0.44, −0.60, +1.62 ms).
          // 2 ms still tells a gapless transition from a lost block (10 ms) or a restart; the
          // precise figure is bench:sync's (evening: every transition within 0.47 ms).
          if (Math.abs(trueGapMs) > 2) console.log(report.join("\n"));
          assertTrue(
            Math.abs(trueGapMs) <= 2,
            `device ${k}: gap ${trueGapMs.toFixed(3)} ms at ${i}→${i + 1}`,
          );
        }
      }
      for (let k = 1; k < 3; k++) {
        for (let i = 0; i < 3; i++) {
          const offMs = (starts[k][i] - starts[0][i]) / 48;
          report.push(`dev${k} vs host, track ${i + 1}: ${offMs.toFixed(3)} ms`);
          // The same outliers as above show here (a late transition is a late track start).
          assertTrue(Math.abs(offMs) <= 2, `device ${k} track ${i + 1} ${offMs.toFixed(3)} ms off`);
        }
      }
      console.log(report.join("\n"));
    } finally {
      await r.destroy();
    }
  },
});

Deno.test({
  name: "a peer killed (SIGKILL) mid-song and restarted gets the track again and rejoins at " +
    "the current position, in sync, under the same name",
  ...opts,
  async fn() {
    const r = await rig(2);
    try {
      const track = `${r.tmp}/song.mp3`;
      await makeNoiseMp3(track, 25);
      const host = r.host([track]);
      await host.waitFor((e) => e.type === "queue", 30000, "queue");
      const first = r.peer(1, "Sam", "cacheA");
      await host.waitFor((e) => e.type === "track-ready" && e.peer === "Sam", 30000, "ready");
      await host.waitFor(
        (e) => e.type === "peers" && (e.peers as { clock: string }[])[0]?.clock === "green",
        20000,
        "clock locked",
      );
      await sleep(1000);
      await host.send("play");
      await first.waitFor((e) => e.type === "started", 10000, "peer started");
      await sleep(4000);
      first.kill("SIGKILL");
      await host.waitFor((e) => e.type === "peer-left" && e.name === "Sam", 5000, "peer left");
      await sleep(1500);
      // A fresh cache: the restarted peer has to fetch the track again.
      const restartMs = realNow();
      const again = r.peer(1, "Sam", "cacheB");
      const welcome = await again.waitFor((e) => e.type === "session", 20000, "rejoined");
      assertEquals(welcome.name, "Sam", "the name is free again");
      const started = await again.waitFor((e) => e.type === "started", 20000, "started again");
      // A 25 s track plays from disk through windows (audio/track_windows.ts), with no frame
      // missed, on the host from the start and on the peer that joined mid-song. The peer's
      // first window runs 7 s past where it started and the next is read 3 s before its end:
      // 6 s in, both have read a second one.
      await sleep(6000);
      for (const p of [host, again]) {
        const isStatus = (e: { type: unknown }) => e.type === "status";
        const before = p.count(isStatus);
        await p.send('{"cmd":"status"}');
        await p.waitFor(() => p.count(isStatus) > before, 5000, "status");
        const s = p.events.filter(isStatus).at(-1)!;
        const audio = s.audio as {
          stats: { missedFrames: number };
          trackWindows: { tracks: number; reads: number };
        };
        assertTrue(
          audio.trackWindows.tracks === 1 && audio.trackWindows.reads >= 2,
          `track windows: ${JSON.stringify(audio.trackWindows)}`,
        );
        assertEquals(audio.stats.missedFrames, 0, "frames missed");
      }
      const rec = await r.rec.stop();
      const play = host.events.find((e) => e.type === "playing")!;
      assertTrue(
        (started.atHostMs as number) - (play.atHostMs as number) > 5000,
        "restarted mid-song, not from the beginning",
      );
      // In the recording: once the peer sounds again, it matches the host at lag ≈ 0.
      const from = Math.round(rec.sampleAt(restartMs));
      const insync = inSyncAfter(rec.channels[0], rec.channels[1], from, 1);
      assertTrue(insync !== null, "the restarted peer plays in sync with the host");
      const rejoinMs = rec.realMsOf(insync) - restartMs;
      console.log(`rejoin (fresh cache) → in-sync sound: ${rejoinMs.toFixed(0)} ms`);
      assertTrue(rejoinMs < 10000, `in sync ${rejoinMs.toFixed(0)} ms after the restart`);
    } finally {
      await r.destroy();
    }
  },
});

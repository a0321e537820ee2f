/**
 * The whole product on real parts: a private PulseAudio, a host and two peers as separate
 * processes in their own network namespaces on a bridge, discovery by mDNS, a real MP3
 * transferred and played, paused, resumed and seeked — and a recording of what each device
 * actually played, cross-correlated to prove they are in sync.
 */
import { assertTrue } from "./assert.ts";
import { createLan } from "./harness/netns.ts";
import { AppProcess } from "./harness/proc.ts";
import { recordBus, startPulse } from "./harness/pulse.ts";
import { lagSeries, percentile } from "./harness/xcorr.ts";

const FIXTURE = new URL("./fixtures/noise48k.mp3", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name: "host and two skewed peers in separate namespaces play, pause, resume and seek in sync",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pulse = await startPulse(3);
    const lan = await createLan(3);
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-sync-" });
    const procs: AppProcess[] = [];
    try {
      const rec = recordBus(pulse);
      const host = new AppProcess(
        [
          "host",
          "--headless",
          "--name",
          "Friday Night",
          "--as",
          "Alex",
          "--audio",
          "pulse",
          FIXTURE,
        ],
        { env: pulse.env(0), prefix: lan.exec(0) },
      );
      procs.push(host);
      await host.waitFor((e) => e.type === "session", 20000, "host session");
      const peer = (k: number, offsetMs: number, skewPpm: number) =>
        new AppProcess([
          "join",
          "--headless",
          "--discover",
          "Friday Night",
          "--as",
          "Sam",
          "--audio",
          "pulse",
          "--cache-dir",
          `${tmp}/cache${k}`,
          "--sim-clock-offset-ms",
          String(offsetMs),
          "--sim-clock-skew-ppm",
          String(skewPpm),
        ], { env: pulse.env(k), prefix: lan.exec(k) });
      const p1 = peer(1, 3200, 60);
      const p2 = peer(2, -1700, -40);
      procs.push(p1, p2);
      // Both discovered the host by mDNS and joined; the second "Sam" became "Sam (2)".
      await host.waitFor(
        (e) => e.type === "peer-joined" && e.name === "Sam (2)",
        30000,
        "two peers",
      );
      await host.waitFor(
        (e) =>
          e.type === "track-ready-all" &&
          host.count((x) => x.type === "track-ready" && !!x.peer) >= 2,
        20000,
        "track ready everywhere",
      );
      // Clocks locked (green) on both peers before play.
      await host.waitFor(
        (e) =>
          e.type === "peers" && Array.isArray(e.peers) && e.peers.length === 2 &&
          e.peers.every((p: { clock: string }) => p.clock === "green"),
        15000,
        "green clocks",
      );
      await sleep(3000); // a drift baseline

      await host.send("play");
      await host.waitFor((e) => e.type === "started", 5000, "start");
      await sleep(3000);
      await host.send("pause");
      await sleep(1200);
      await host.send("resume");
      await sleep(2000);
      await host.send('{"cmd":"seek","seconds":1.5}');
      await sleep(1000);
      // A peer dies mid-song: the host and the other peer play on, in sync.
      const p2name = (await p2.waitFor((e) => e.type === "session")).name;
      p2.kill("SIGKILL");
      await host.waitFor((e) => e.type === "peer-left" && e.name === p2name, 5000, "peer-left");
      await sleep(1500);
      for (const p of [host, p1]) await p.quit();
      const ch = (await rec.stop()).channels;

      // The peers really were told to start at the same host time and did.
      for (const p of [p1, p2]) {
        assertTrue(
          p.count((e) => e.type === "started") >= 3,
          "each peer started play, resume and seek",
        );
      }
      // Silence while paused: a window in the middle of the pause is quiet on every channel.
      const lags = [1, 2].map((k) => lagSeries(ch[0], ch[k], { windowSec: 0.25, hopSec: 0.25 }));
      for (const [i, s] of lags.entries()) {
        const abs = s.points.map((p) => Math.abs(p.lagMs));
        const summary =
          `device 0 vs ${i + 1}: ${abs.length} windows, p50 ${
            percentile(abs, 50).toFixed(3)
          } ms, ` +
          `p95 ${percentile(abs, 95).toFixed(3)} ms, max ${Math.max(...abs).toFixed(3)} ms`;
        console.log(summary);
        assertTrue(abs.length >= 20, `enough sound to compare (${summary})`);
        assertTrue(percentile(abs, 95) <= 2, `p95 within 2 ms (${summary})`);
        assertTrue(Math.max(...abs) <= 5, `every window within 5 ms (${summary})`);
      }
      // Sound ≈ 3 + 2 + 2.5 s (device 2: until it was killed); the pause silenced every device.
      for (let k = 0; k < 3; k++) {
        let loud = 0;
        for (let i = 0; i < ch[k].length; i += 480) if (Math.abs(ch[k][i]) > 0.001) loud++;
        const sec = loud / 100;
        const [lo, hi] = k === 2 ? [5, 7] : [6.5, 9];
        assertTrue(sec > lo && sec < hi, `device ${k} played ${sec.toFixed(2)} s of sound`);
      }
      // After the kill, device 1 still lines up with the host.
      const late = lags[0].points.filter((p) => p.atSec > lags[1].points.at(-1)!.atSec);
      assertTrue(
        late.length >= 3 && late.every((p) => Math.abs(p.lagMs) <= 2),
        `in sync after the kill: ${JSON.stringify(late)}`,
      );
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      await lan.destroy();
      await pulse.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * Speaker delay and channel assignment, heard: a host and a peer play a track whose right
 * channel is silent; the peer's recorded output shows the delay (it plays early by exactly the
 * speaker's latency) and which channel it plays. Settings are remembered per device.
 */
import { assertEquals, assertNear, assertTrue } from "./assert.ts";
import { AppProcess } from "./harness/proc.ts";
import { recordBus, startPulse } from "./harness/pulse.ts";
import { makeNoiseMp3 } from "./harness/tracks.ts";
import { lagSeries } from "./harness/xcorr.ts";
import { freePort } from "./harness/ports.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

Deno.test({
  name: "speaker delay makes a device play early by that much; channels left/right are heard",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-speaker-" });
    const pulse = await startPulse(2);
    const procs: AppProcess[] = [];
    try {
      const track = `${tmp}/lr.mp3`;
      await makeNoiseMp3(track, 30, { leftOnly: true, kbps: 192 });
      const port = freePort();
      const rec = recordBus(pulse);
      const host = new AppProcess([
        "host",
        "--headless",
        "--name",
        "Spk",
        "--as",
        "Host",
        "--audio",
        "pulse",
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--no-advertise",
        "--config-dir",
        `${tmp}/hostcfg`,
        track,
      ], { env: pulse.env(0) }); // deno-fmt-ignore
      procs.push(host);
      await host.waitFor((e) => e.type === "session", 20000, "host");
      const peerArgs = [
        "join",
        "--headless",
        `127.0.0.1:${port}`,
        "--as",
        "Pat",
        "--audio",
        "pulse",
        "--cache-dir",
        `${tmp}/cache`,
        "--config-dir",
        `${tmp}/peercfg`,
      ]; // deno-fmt-ignore
      const peer = new AppProcess([...peerArgs, "--speaker-delay-ms", "5"], { env: pulse.env(1) });
      procs.push(peer);
      await host.waitFor((e) => e.type === "track-ready-all", 20000, "track ready");
      await host.waitFor(
        (e) => e.type === "peers" && (e.peers as { clock: string }[])[0]?.clock === "green",
        10000,
        "clock",
      );
      await sleep(3000);
      await host.send("play");
      await host.waitFor((e) => e.type === "started", 5000, "started");
      const marks: number[] = [now()];
      await sleep(2500);
      marks.push(now());
      await peer.send("channel left");
      await sleep(2000);
      marks.push(now());
      await host.send("channel Pat right");
      await peer.waitFor((e) => e.type === "device" && e.channel === "right", 5000, "assigned");
      await sleep(1500);
      marks.push(now());
      const hostView = await host.waitFor(
        (e) =>
          e.type === "peers" &&
          (e.peers as { channel: string }[]).some((p) => p.channel === "right"),
        5000,
        "host sees the assignment",
      );
      assertEquals((hostView.peers as { speakerDelayMs: number }[])[0].speakerDelayMs, 5);
      await peer.quit();
      await host.quit();
      const r = await rec.stop();

      const phase = (i: number) => {
        // Skip 0.5 s after each change: fades, realign and the scheduler's lead.
        const a = Math.floor(r.sampleAt(marks[i] + 500)), b = Math.floor(r.sampleAt(marks[i + 1]));
        const h = r.channels[0].subarray(a, b), p = r.channels[1].subarray(a, b);
        const rms = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
        const lags = lagSeries(h, p, { windowSec: 0.25, hopSec: 0.25 }).points.map((q) => q.lagMs);
        return { ratio: rms(p) / rms(h), lags };
      };
      // Stereo into a mono speaker: (L + 0)/2, like the host. 5 ms early.
      const a = phase(0);
      assertNear(a.ratio, 1, 0.1, "stereo level");
      assertTrue(a.lags.length >= 4, `windows: ${a.lags}`);
      // The 5 ms asked for: typically 0.05–0.3 ms off. On a busy 2-core machine a window now and
      // then lands further off (0.5 ms once in six full runs; 1.2 ms once in a full run with the
      // browser tests before it), so the median must be close and every window within 2 ms.
      const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
      assertNear(median(a.lags), -5, 0.5, "plays 5 ms early (median)");
      for (const l of a.lags) assertNear(l, -5, 2, "plays 5 ms early");
      // Left on both outputs: twice the host's level, still 5 ms early.
      const b = phase(1);
      assertNear(b.ratio, 2, 0.2, "left level");
      assertNear(median(b.lags), -5, 0.5, "still 5 ms early (median)");
      for (const l of b.lags) assertNear(l, -5, 2, "still 5 ms early");
      // Right (silent in this track), assigned by the host.
      const c = phase(2);
      assertTrue(c.ratio < 0.02, `right is silent: ${c.ratio}`);

      // The same device remembers its delay and channel.
      const again = new AppProcess(peerArgs, { env: pulse.env(1) });
      procs.push(again);
      const dev = await again.waitFor((e) => e.type === "device", 15000, "device settings");
      assertEquals([dev.speakerDelayMs, dev.channel], [5, "right"]);
      again.kill();
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      await pulse.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

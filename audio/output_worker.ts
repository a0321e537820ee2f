/// <reference lib="deno.worker" />
/**
 * The audio write loop, on its own thread so that decoding, networking and (in desktop mode)
 * the webview pump on the main thread can never starve the device. It owns the sink, learns
 * the device clock from the sink's timing reports and renders blocks with the Player.
 */
import { DeviceClock } from "./device_clock.ts";
import { blockHostTimes, Player } from "./player.ts";
import { releaseFreedMemorySoon } from "./release_memory.ts";
import { TrackWindows } from "./track_windows.ts";
import type { AudioSink } from "./sink.ts";
import { openSink } from "./sinks/select.ts";
import { type HostMap, IDENTITY_MAP, makeLocalClock } from "../net/local_clock.ts";
import type { ToWorker } from "./output.ts";

let sink: AudioSink | null = null;
let running = false;
let map: HostMap = IDENTITY_MAP;
let player: Player | null = null;
/** Long tracks, played from disk through windows (see ./track_windows.ts). */
let windows: TrackWindows | null = null;
let clock = makeLocalClock();
/** Output leaves this device this long before it is heard (external speaker latency). */
let speakerDelayMs = 0;
/** Testing aid (`--sim-output-latency-ms`): content leaves this much late, as behind a slow speaker. */
let hiddenLatencyMs = 0;

/**
 * How often the write loop wakes. Placement does not depend on it (every frame is placed by the
 * device's timing reports), only how full the device's buffer is kept: 20 ms against the 60-70
 * ms every sink keeps ahead. Most of the thread's CPU is the wake itself (the runtime's timer
 * and event loop; the rendering barely shows in a profile): waking every 4 ms cost 5 % of a
 * core, every 10 ms 2.1-2.5 %, every 20 ms 1.6-1.9 % (bench:footprint, two runs each, one
 * sitting), with LAN sync p95 0.36-0.63 ms against 0.26-0.90 ms at 10 ms (five runs each).
 */
const WAKE_MS = 20;

const post = (m: unknown, transfer: Transferable[] = []) => self.postMessage(m, transfer);

self.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  try {
    switch (m.type) {
      case "open": {
        clock = makeLocalClock(m.sim);
        hiddenLatencyMs = m.hiddenLatencyMs ?? 0;
        const opened = await openSink({ backend: m.backend, wavPath: m.wavPath });
        sink = opened.sink;
        player = new Player(sink.rateHz);
        windows = new TrackWindows(
          player,
          (text) => post({ type: "error", text }),
          releaseFreedMemorySoon,
        );
        post({
          type: "opened",
          backend: sink.backend,
          device: `${sink.backend}:${deviceName(sink.backend, m.wavPath)}`,
          audible: sink.audible,
          failure: opened.failure,
        });
        running = true;
        loop();
        break;
      }
      case "map":
        map = m.map;
        break;
      case "track":
        player?.addTrack(m.pcm);
        void windows?.spill(m.pcm);
        break;
      case "drop":
        windows?.drop(m.trackId);
        player?.dropTrack(m.trackId);
        break;
      case "schedule":
        player?.schedule(m.schedule);
        break;
      case "volume":
        player?.setVolume(m.volume, m.muted);
        break;
      case "speakerDelay":
        speakerDelayMs = m.ms;
        player?.realign();
        break;
      case "channel":
        player?.setChannel(m.channel);
        break;
      case "clicks":
        player?.setClicks(m.on);
        break;
      case "probe":
        player?.playProbe(m.atHostMs);
        break;
      case "close":
        running = false;
        break;
    }
  } catch (e) {
    post({ type: "error", text: (e as Error).message });
  }
};

async function loop() {
  const s = sink!, p = player!;
  const dc = new DeviceClock(s.rateHz);
  let written = 0;
  let lastStatus = 0;
  const minBlock = Math.round(s.rateHz / 400); // 2.5 ms: fewer, larger writes cost less CPU
  const frameToLocal = (f: number) => clock.fromReal(dc.localMsOf(f));
  while (running) {
    const t = s.timing();
    if (t) dc.add(t);
    const n = s.writableFrames();
    if (n >= minBlock) {
      let block: Float32Array;
      if (dc.ready) {
        const { h0, msPerFrame } = blockHostTimes(frameToLocal, map, written, n);
        // A frame written now is heard speakerDelayMs later than the device reports (and, with
        // the testing aid, carries what was due hiddenLatencyMs ago: a latency nobody reports).
        block = p.render(n, h0 + speakerDelayMs - hiddenLatencyMs, msPerFrame);
      } else {
        block = new Float32Array(n * 2);
      }
      s.write(block);
      written += n;
      windows?.maintain();
    }
    if (p.events.length) {
      for (const e of p.events) post({ type: "player", event: e });
      p.events = [];
    }
    const now = performance.now();
    if (now - lastStatus > 500 && dc.ready) {
      lastStatus = now;
      const playing = p.playing;
      post({
        type: "status",
        playing,
        stats: { ...p.stats },
        deviceRatePpm: (dc.rateHz / s.rateHz - 1) * 1e6,
        deviceResets: dc.resets,
        aheadMs: ((written - (t?.frame ?? written)) * 1000) / s.rateHz,
        trackWindows: { tracks: windows?.size ?? 0, reads: windows?.loads ?? 0 },
      });
    }
    await new Promise((r) => setTimeout(r, WAKE_MS));
  }
  await s.close();
  await windows?.close();
  post({ type: "closed" });
  self.close();
}

/** Which output device this is, to remember its settings by. */
function deviceName(backend: string, wavPath?: string): string {
  if (backend === "pulse") return Deno.env.get("PULSE_SINK") ?? "default";
  if (backend === "wav") return wavPath ?? "file";
  return "default";
}

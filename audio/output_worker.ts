/// <reference lib="deno.worker" />
/**
 * The audio write loop, on its own thread so that decoding, networking and (in desktop mode)
 * the webview pump on the main thread can never starve the device. It owns the sink, learns
 * the device clock from the sink's timing reports and renders blocks with the Player.
 */
import { DeviceClock } from "./device_clock.ts";
import { blockHostTimes, type Pcm, Player } from "./player.ts";
import { decodeMp3 } from "./decode.ts";
import { TrackStream } from "./track_stream.ts";
import type { AudioSink } from "./sink.ts";
import { openSink } from "./sinks/select.ts";
import { type HostMap, IDENTITY_MAP, makeLocalClock } from "../net/local_clock.ts";
import type { EncodedTrack, ToWorker } from "./output.ts";

let sink: AudioSink | null = null;
let running = false;
let map: HostMap = IDENTITY_MAP;
let player: Player | null = null;
let clock = makeLocalClock();
/** Output leaves this device this long before it is heard (external speaker latency). */
let speakerDelayMs = 0;
/** Testing aid (`--sim-output-latency-ms`): content leaves this much late, as behind a slow speaker. */
let hiddenLatencyMs = 0;

/**
 * How often the write loop wakes. Placement does not depend on it (every frame is placed by the
 * device's timing reports), only how full the device's buffer is kept: 10 ms against the 70 ms
 * the sink keeps ahead. Waking every 4 ms cost twice the CPU (5 % of a core while playing, against
 * 2.5 %, null sink, measured in one run).
 */
const WAKE_MS = 10;

/** Tracks decoded while they play, by id; and those handed over as files, still opening. */
const streams = new Map<string, TrackStream>();
const encoded = new Set<string>();
/** Decoding while playing: each block, at most this much ahead (s), more when behind. */
const PUMP_SEC = 0.25, CATCH_UP_SEC = 2;

/**
 * A track handed over as its file: streamed when it can be, else decoded whole here (a track
 * under 4 s, or one whose decoders disagree). Dropped while opening: forgotten.
 */
async function addEncoded(t: EncodedTrack) {
  encoded.add(t.id);
  let stream: TrackStream | null = null;
  let pcm: Pcm;
  try {
    stream = await TrackStream.open(t.bytes, t);
    pcm = stream?.pcm ??
      await decodeMp3(t.bytes, { id: t.id, fileName: t.fileName, format: "int16" });
  } catch (e) {
    post({ type: "error", text: `Cannot play "${t.fileName}": ${(e as Error).message}` });
    return;
  }
  if (!encoded.has(t.id)) return stream?.free();
  if (stream) {
    stream.pump(0, t.rateHz * CATCH_UP_SEC);
    streams.set(t.id, stream);
  }
  player?.addTrack(pcm);
}

/** Decodes what the player will read next, before it reads it. */
function pumpStreams(p: Player, hostMs: number) {
  if (streams.size === 0) return;
  const needs = p.needs(hostMs);
  for (const [id, s] of streams) {
    const need = needs.get(id);
    if (need === undefined) continue;
    const behind = need.at < s.pcm.offset || need.at + s.pcm.rateHz > s.end;
    s.pump(need.at, s.pcm.rateHz * (behind ? CATCH_UP_SEC : PUMP_SEC), need.upcoming);
  }
}

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
        break;
      case "encoded":
        await addEncoded(m.track);
        break;
      case "drop":
        streams.get(m.trackId)?.free();
        streams.delete(m.trackId);
        encoded.delete(m.trackId);
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
        const at = h0 + speakerDelayMs - hiddenLatencyMs;
        pumpStreams(p, at);
        block = p.render(n, at, msPerFrame);
      } else {
        block = new Float32Array(n * 2);
      }
      s.write(block);
      written += n;
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
      });
    }
    await new Promise((r) => setTimeout(r, WAKE_MS));
  }
  await s.close();
  post({ type: "closed" });
  self.close();
}

/** Which output device this is, to remember its settings by. */
function deviceName(backend: string, wavPath?: string): string {
  if (backend === "pulse") return Deno.env.get("PULSE_SINK") ?? "default";
  if (backend === "wav") return wavPath ?? "file";
  return "default";
}

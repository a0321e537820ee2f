import { AudioOutput } from "../audio/output.ts";
import { decodeMp3 } from "../audio/decode.ts";
import type { SinkBackend } from "../audio/sink.ts";
import { clockColor } from "../net/clock_filter.ts";
import { ClockPinger } from "../net/clock_udp.ts";
import type { LocalClock } from "../net/local_clock.ts";
import { download } from "../net/transfer.ts";
import { type Command, type EngineEvent, LOCAL_COMMANDS } from "./commands.ts";
import { DeviceControls, type DeviceSettings, type SettingsStore } from "./device_settings.ts";
import {
  decodeMessage,
  encodeMessage,
  type HostToPeer,
  type PeerToHost,
  PROTOCOL_VERSION,
  type TrackInfo,
} from "./protocol.ts";

export interface PeerOptions {
  hostname: string;
  port: number;
  name: string;
  audio: SinkBackend | "auto";
  wavPath?: string;
  cacheDir: string;
  /** Speaker settings from the command line; the rest come from `settings`. */
  device?: Partial<DeviceSettings>;
  settings?: SettingsStore;
}

/** Ways a peer session ends; main maps them to exit codes. */
export type PeerEnd = "quit" | "host-gone" | "refused";

/** A native peer: joins a host, syncs its clock, fetches tracks and plays on schedule. */
export class PeerEngine {
  #ws: WebSocket | null = null;
  #pinger: ClockPinger | null = null;
  #output: AudioOutput;
  #device: DeviceControls;
  #audio = { backend: "null", device: false };
  #lastHeardMs = 0;
  #timers: ReturnType<typeof setInterval>[] = [];
  #loading = new Set<string>();
  #ready = new Set<string>();
  #tracks = new Map<string, TrackInfo>();
  #rates = new Map<string, number>();
  #volume = 1;
  #muted = false;
  #ended!: (why: PeerEnd) => void;
  /** Resolves when the session is over, with the reason. */
  readonly ended: Promise<PeerEnd> = new Promise((r) => this.#ended = r);
  #done = false;
  name = "";

  constructor(
    readonly opts: PeerOptions,
    readonly clock: LocalClock,
    readonly emit: (e: EngineEvent) => void,
  ) {
    this.#output = new AudioOutput({ backend: opts.audio, wavPath: opts.wavPath, sim: clock.sim });
    this.#device = new DeviceControls(this.#output, opts.settings ?? null, emit);
    // The host shows every peer's channel and delay.
    this.#device.onChange = (s) => this.#send({ type: "settings", ...s });
  }

  async start(): Promise<void> {
    // Clock pings need nothing from the session, so they start first: the clock locks while
    // the audio device opens and the control connection is made.
    this.#startClock();
    const opened = await this.#output.opened();
    this.#audio = { backend: opened.backend, device: opened.audible };
    this.#output.onError = (text) => this.emit({ type: "error", message: text });
    this.#output.onEvent = (e) => {
      if (e.type === "started" || e.type === "ended") {
        this.emit({ type: e.type, trackId: e.trackId, atHostMs: e.atHostMs });
      }
      if (e.type === "resync") {
        this.emit({
          type: "notice",
          level: "warn",
          message: `Resynchronised playback (was ${e.errorMs.toFixed(1)} ms off).`,
        });
      }
      if (e.type === "missing") {
        this.emit({
          type: "notice",
          level: "info",
          message: "The song is already playing: joining in as soon as it is loaded.",
        });
      }
    };
    await this.#device.init(opened.device, this.opts.device ?? {});
    this.emit({
      type: "audio",
      backend: opened.backend,
      audible: opened.audible,
      ...(opened.audible ? {} : {
        warning: "No audio output detected — you won't hear playback" +
          (opened.failure ? ` (${opened.failure})` : ""),
      }),
    });
    await Deno.mkdir(this.opts.cacheDir, { recursive: true });
    await this.#connect();
  }

  #connect(): Promise<void> {
    const { hostname, port } = this.opts;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    const ws = new WebSocket(`ws://${host}:${port}/ws`);
    this.#ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      const timeout = setTimeout(() => {
        if (!welcomed) {
          ws.close();
          reject(new Error(`No answer from ${hostname}:${port} within 5 s.`));
        }
      }, 5000);
      ws.onopen = () => {
        this.#send({
          type: "hello",
          protocolVersion: PROTOCOL_VERSION,
          name: this.opts.name,
          client: "native",
          audio: this.#audio,
        });
      };
      ws.onerror = () => {
        if (!welcomed) {
          clearTimeout(timeout);
          reject(new Error(`Cannot reach a PhaseLock host at ${hostname}:${port}.`));
        }
      };
      ws.onclose = () => {
        clearTimeout(timeout);
        if (welcomed) this.#hostGone();
      };
      ws.onmessage = (ev) => {
        let m: HostToPeer;
        try {
          m = decodeMessage(ev.data as string, "host") as HostToPeer;
        } catch (e) {
          this.emit({
            type: "notice",
            level: "warn",
            message: `Ignored a message from the host: ${(e as Error).message}.`,
          });
          return;
        }
        this.#lastHeardMs = performance.now();
        if (m.type === "welcome") {
          welcomed = true;
          clearTimeout(timeout);
          this.name = m.name;
          this.emit({
            type: "session",
            role: "peer",
            session: m.session,
            name: m.name,
            host: m.hostName,
          });
          if (this.#pinger) this.#pinger.opts.peerId = m.peerId;
          this.#send({ type: "settings", ...this.#device.settings });
          this.#timers.push(setInterval(() => this.#tick(), 1000));
          resolve();
        } else if (m.type === "refused") {
          clearTimeout(timeout);
          this.emit({ type: "error", message: `The host refused to let you join: ${m.reason}` });
          this.#finish("refused");
          reject(new Error(m.reason));
        } else {
          this.#onMessage(m);
        }
      };
    });
  }

  #startClock() {
    const p = new ClockPinger({
      hostname: this.opts.hostname,
      port: this.opts.port,
      peerId: 0,
      clock: this.clock,
    });
    this.#pinger = p;
    let wasLocked = false;
    p.onUpdate = () => {
      const e = p.filter.estimate!;
      this.#output.setHostMap({
        offsetMs: e.offsetMs,
        driftPpm: e.driftPpm,
        refLocalMs: e.refLocalMs,
      });
      if (e.locked && !wasLocked) {
        wasLocked = true;
        this.#reportClock();
      }
    };
    p.start();
  }

  #reportClock() {
    const e = this.#pinger?.filter.estimate;
    if (!e) return;
    const m = {
      locked: e.locked,
      offsetMs: e.offsetMs,
      driftPpm: e.driftPpm,
      rttMs: e.rttMs,
      errorMs: e.errorMs,
    };
    this.#send({ type: "clock", ...m });
    this.emit({
      type: "clock",
      ...m,
      color: clockColor(e, this.clock.now() - this.#pinger!.lastSampleMs),
    });
  }

  #tick() {
    this.#reportClock();
    // Heartbeats arrive every second; three missed means the host is gone even if TCP is silent.
    if (performance.now() - this.#lastHeardMs > 3000) this.#hostGone();
  }

  #send(m: PeerToHost) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(encodeMessage(m));
  }

  #onMessage(m: HostToPeer) {
    switch (m.type) {
      case "load":
        this.#tracks.set(m.track.id, m.track);
        void this.#load(m.track);
        return;
      case "play":
        this.#output.schedule({
          kind: "play",
          trackId: m.trackId,
          fromFrame: m.fromFrame,
          atHostMs: m.atHostMs,
        });
        this.emit({
          type: "playing",
          trackId: m.trackId,
          title: this.#tracks.get(m.trackId)?.title ?? m.trackId,
          positionSec: m.fromFrame / (this.#rates.get(m.trackId) ?? 48000),
          atHostMs: m.atHostMs,
        });
        return;
      case "pause":
        this.#output.schedule({ kind: "silence", atHostMs: m.atHostMs });
        this.emit({ type: "paused", trackId: "", positionSec: 0, atHostMs: m.atHostMs });
        return;
      case "queue":
        this.emit({ type: "queue", tracks: m.tracks, current: m.current });
        return;
      case "peers":
        this.emit({ type: "peers", peers: m.peers });
        return;
      case "notice":
        this.emit({ type: "notice", level: m.level, message: m.text });
        return;
      case "assign":
        this.emit({
          type: "notice",
          level: "info",
          message: `The host set this device to play ${m.channel}.`,
        });
        void this.#device.setChannel(m.channel);
        return;
      case "heartbeat":
      case "welcome":
      case "refused":
        return;
    }
  }

  async #load(t: TrackInfo) {
    if (this.#loading.has(t.id) || this.#ready.has(t.id)) {
      if (this.#ready.has(t.id)) {
        this.#send({ type: "trackState", trackId: t.id, state: "ready", progress: 1 });
      }
      return;
    }
    this.#loading.add(t.id);
    const state = (
      s: "downloading" | "decoding" | "ready" | "failed",
      progress: number,
      error?: string,
    ) => {
      this.#send({
        type: "trackState",
        trackId: t.id,
        state: s,
        progress,
        ...(error ? { error } : {}),
      });
      this.emit({
        type: "transfer",
        trackId: t.id,
        fileName: t.fileName,
        state: s,
        progress,
        ...(error ? { error } : {}),
      });
    };
    try {
      state("downloading", 0);
      const host = this.opts.hostname.includes(":")
        ? `[${this.opts.hostname}]`
        : this.opts.hostname;
      const path = await download({
        url: `http://${host}:${this.opts.port}/tracks/${t.id}`,
        sha256: t.id,
        sizeBytes: t.sizeBytes,
        dir: this.opts.cacheDir,
        onProgress: (f) => state("downloading", f),
        onRetry: (n, why) =>
          this.emit({
            type: "notice",
            level: "warn",
            message: `Retrying "${t.fileName}" (attempt ${n + 1} of 4): ${why}`,
          }),
      });
      state("decoding", 1);
      const pcm = await decodeMp3(await Deno.readFile(path), { id: t.id, fileName: t.fileName });
      this.#output.addTrack(pcm);
      this.#rates.set(t.id, pcm.rateHz);
      this.#ready.add(t.id);
      state("ready", 1);
      this.emit({ type: "track-ready", trackId: t.id, fileName: t.fileName });
    } catch (e) {
      state("failed", 0, (e as Error).message.slice(0, 400));
    } finally {
      this.#loading.delete(t.id);
    }
  }

  run(c: Command): void {
    if (!LOCAL_COMMANDS.has(c.cmd)) {
      this.emit({
        type: "error",
        message:
          `Only the host controls "${c.cmd}". A peer can use: volume, mute, unmute, delay, channel, status, quit.`,
      });
      return;
    }
    if (c.cmd === "delay") return void this.#device.setDelay(c.ms);
    if (c.cmd === "channel") {
      if (c.peer !== undefined) {
        this.emit({ type: "error", message: "Only the host assigns channels to other devices." });
      } else void this.#device.setChannel(c.channel);
      return;
    }
    if (c.cmd === "volume") this.#volume = c.level;
    if (c.cmd === "mute" || c.cmd === "unmute") this.#muted = c.cmd === "mute";
    if (c.cmd === "volume" || c.cmd === "mute" || c.cmd === "unmute") {
      this.#output.setVolume(this.#volume, this.#muted);
      this.emit({ type: "volume", level: this.#volume, muted: this.#muted });
    } else if (c.cmd === "status") {
      const e = this.#pinger?.filter.estimate;
      this.emit({
        type: "status",
        role: "peer",
        name: this.name,
        clock: e ?? null,
        // The simulated clock error (a testing aid), so a benchmark can score the estimate.
        sim: this.clock.sim,
        volume: this.#volume,
        muted: this.#muted,
        ...this.#device.settings,
        ready: [...this.#ready],
        audio: this.#output.status,
      });
    } else if (c.cmd === "quit") {
      this.#send({ type: "bye" });
      this.#finish("quit");
    }
  }

  #hostGone() {
    if (this.#done) return;
    this.emit({ type: "host-disconnected", message: "Host disconnected — session ended" });
    this.#finish("host-gone");
  }

  #finish(why: PeerEnd) {
    if (this.#done) return;
    this.#done = true;
    this.#ended(why);
  }

  async stop(): Promise<void> {
    this.#done = true;
    for (const t of this.#timers) clearInterval(t);
    this.#pinger?.stop();
    try {
      this.#ws?.close();
    } catch { /* closed */ }
    await this.#output.close();
  }
}

import { audioEvent, AudioOutput } from "../audio/output.ts";
import { decodeMp3Apart } from "../audio/decode_native.ts";
import { Mp3FormatError, scanMp3 } from "../audio/mp3_scan.ts";
import type { SinkBackend } from "../audio/sink.ts";
import { baseName, readTags, readTrackFile, TrackFileError } from "../audio/track_file.ts";
import { clockColor } from "../net/clock_filter.ts";
import { ClockPinger } from "../net/clock_udp.ts";
import { type LocalClock, localToHost } from "../net/local_clock.ts";
import { download, sha256Hex } from "../net/transfer.ts";
import { type Command, type EngineEvent, LOCAL_COMMANDS } from "./commands.ts";
import { fetchOrder, queueEvent, wantedOf } from "./queue.ts";
import { DeviceControls, type DeviceSettings, type SettingsStore } from "./device_settings.ts";
import { PeerPlayback, SongRequests } from "./peer_playback.ts";
import {
  decodeMessage,
  encodeMessage,
  type HostToPeer,
  type PeerToHost,
  PROTOCOL_VERSION,
  type TrackInfo,
  type TrackStateName,
} from "./protocol.ts";

/** Where a queued file stands on this device (decoded ones are also in `#decoded`). */
type FileState = "downloading" | "cached" | "failed";

export interface PeerOptions {
  hostname: string;
  port: number;
  name: string;
  audio: SinkBackend | "auto";
  wavPath?: string;
  /** Testing aid: a latency this device's output has and does not report (ms). */
  simOutputLatencyMs?: number;
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
  /** The host's queue as last received: ids in order, and each track's info. */
  #ids: string[] = [];
  #current = -1;
  readonly #tracks = new Map<string, TrackInfo>();
  readonly #files = new Map<string, FileState>();
  readonly #paths = new Map<string, string>();
  readonly #decoded = new Map<string, number>(); // id → sample rate
  #download: { id: string; abort: AbortController } | null = null;
  #working = false;
  #workAgain = false;
  /** Song requests this peer sent; bytes kept until the host decides. */
  readonly #requests: SongRequests;
  /** Aborts song-request uploads in flight when the session ends. */
  readonly #uploads = new AbortController();
  /** The host's schedules, the player's events and what the screens are told of them. */
  readonly #playback: PeerPlayback;
  #volume = 1;
  #muted = false;
  /** The jam's click test, as the host last said. */
  #clicks = false;
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
    this.#output = new AudioOutput({
      backend: opts.audio,
      wavPath: opts.wavPath,
      sim: clock.sim,
      hiddenLatencyMs: opts.simOutputLatencyMs,
    });
    this.#device = new DeviceControls(this.#output, opts.settings ?? null, emit);
    this.#requests = new SongRequests(emit);
    this.#playback = new PeerPlayback({
      schedule: (s) => this.#output.schedule(s),
      emit,
      track: (id) => this.#tracks.get(id),
      rateOf: (id) => this.#rateOf(id),
    });
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
    this.#output.onEvent = (e) => this.#playback.onPlayerEvent(e);
    await this.#device.init(opened.device, this.opts.device ?? {});
    this.emit(audioEvent(opened));
    this.emit({ type: "volume", level: this.#volume, muted: this.#muted });
    await Deno.mkdir(this.opts.cacheDir, { recursive: true });
    await this.#connect();
  }

  #connect(): Promise<void> {
    const { hostname, port } = this.opts;
    const ws = new WebSocket(`${this.#httpBase().replace(/^http/, "ws")}/ws`);
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
            jamUrl: this.#httpBase(),
          });
          if (this.#pinger) this.#pinger.opts.peerId = m.peerId;
          this.#send({ type: "settings", ...this.#device.settings });
          this.#timers.push(setInterval(() => this.#reportClock(), 1000));
          // Heartbeats come every 0.5 s; 2.5 s of silence means the host is gone even when
          // TCP says nothing (a frozen host, a dead link), so peers know within 3 s.
          this.#timers.push(setInterval(() => {
            if (performance.now() - this.#lastHeardMs > 2500) this.#hostGone();
          }, 250));
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
    const placementMs = this.#output.status?.playing ? this.#output.status.stats.errorMs : 0;
    this.#send({ type: "clock", ...m, placementMs });
    this.emit({
      type: "clock",
      ...m,
      color: clockColor(e, this.clock.now() - this.#pinger!.lastSampleMs),
    });
  }

  #send(m: PeerToHost) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(encodeMessage(m));
  }

  #onMessage(m: HostToPeer) {
    switch (m.type) {
      case "queue":
        this.#onQueue(m.tracks, m.current);
        this.emit(queueEvent(m.tracks, m.current));
        return;
      case "retry":
        for (const [id, st] of this.#files) if (st === "failed") this.#files.delete(id);
        void this.#work();
        return;
      case "upload":
        void this.#upload(m.requestId, m.token);
        return;
      case "requestResult":
        this.#requests.result(m);
        return;
      case "play":
      case "pause":
      case "next":
        this.#playback.onSchedule(m);
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
      case "delay":
        this.emit({
          type: "notice",
          level: "info",
          message: `Calibration set this device's speaker delay to ${
            m.speakerDelayMs.toFixed(1)
          } ms.`,
        });
        void this.#device.setDelay(m.speakerDelayMs);
        return;
      case "clicks":
        this.#clicks = m.on;
        this.#output.setClicks(m.on);
        this.emit({ type: "clicks", on: m.on });
        return;
      case "probe":
        this.#output.playProbe(m.atHostMs);
        this.emit({ type: "probe", device: this.opts.name, atHostMs: m.atHostMs });
        return;
      case "heartbeat":
      case "welcome":
      case "refused":
        return;
    }
  }

  // ---------- tracks: fetch every queued file, keep the current and next decoded ----------

  #onQueue(tracks: TrackInfo[], current: number) {
    this.#ids = tracks.map((t) => t.id);
    this.#current = current;
    this.#tracks.clear();
    for (const t of tracks) this.#tracks.set(t.id, t);
    const wanted = this.#wanted();
    for (const [id] of this.#decoded) {
      if (wanted.includes(id)) continue;
      this.#decoded.delete(id);
      this.#output.dropTrack(id);
      if (this.#tracks.has(id)) this.#report(this.#tracks.get(id)!, "cached", 1);
    }
    for (const id of [...this.#files.keys()]) {
      if (!this.#tracks.has(id)) this.#files.delete(id);
    }
    // A download of a track that is no longer needed, or that is less urgent than a wanted one
    // not yet here, stops; it resumes from where it was later.
    const dl = this.#download;
    const urgent = wanted.some((id) => !this.#files.has(id));
    if (dl && (!this.#tracks.has(dl.id) || (urgent && !wanted.includes(dl.id)))) dl.abort.abort();
    void this.#work();
  }

  #wanted(): string[] {
    return wantedOf(this.#ids, this.#current);
  }

  /** One track job at a time: decode a wanted cached track, else fetch the next missing one. */
  async #work(): Promise<void> {
    if (this.#working) {
      this.#workAgain = true;
      return;
    }
    this.#working = true;
    try {
      do {
        this.#workAgain = false;
        let job;
        while (!this.#done && (job = this.#nextJob())) await job();
      } while (this.#workAgain && !this.#done);
    } finally {
      this.#working = false;
    }
  }

  #nextJob(): (() => Promise<void>) | null {
    for (const id of this.#wanted()) {
      if (this.#files.get(id) === "cached" && !this.#decoded.has(id)) {
        return () => this.#decode(this.#tracks.get(id)!);
      }
    }
    for (const id of fetchOrder(this.#ids, this.#current)) {
      if (!this.#files.has(id)) return () => this.#fetch(this.#tracks.get(id)!);
    }
    return null;
  }

  #report(t: TrackInfo, state: TrackStateName, progress: number, error?: string) {
    const extra = error ? { error } : {};
    this.#send({ type: "trackState", trackId: t.id, state, progress, ...extra });
    this.emit({ type: "transfer", trackId: t.id, fileName: t.fileName, state, progress, ...extra });
  }

  async #fetch(t: TrackInfo) {
    this.#files.set(t.id, "downloading");
    const abort = new AbortController();
    this.#download = { id: t.id, abort };
    this.#report(t, "downloading", 0);
    try {
      const path = await download({
        url: `${this.#httpBase()}/tracks/${t.id}`,
        sha256: t.id,
        sizeBytes: t.sizeBytes,
        dir: this.opts.cacheDir,
        signal: abort.signal,
        onProgress: (f) => this.#report(t, "downloading", f),
        onRetry: (n, why, fromByte) =>
          this.emit({
            type: "notice",
            level: "warn",
            message: `Retrying "${t.fileName}" (attempt ${n + 1} of 4${
              fromByte > 0 ? `, resuming at byte ${fromByte}` : ""
            }): ${why}`,
          }),
      });
      this.#paths.set(t.id, path);
      this.#files.set(t.id, "cached");
      if (!this.#wanted().includes(t.id)) this.#report(t, "cached", 1);
    } catch (e) {
      if (abort.signal.aborted) {
        this.#files.delete(t.id); // not failed: fetched again when its turn comes
        return;
      }
      this.#files.set(t.id, "failed");
      this.#report(t, "failed", 0, (e as Error).message.slice(0, 400));
    } finally {
      this.#download = null;
    }
  }

  async #decode(t: TrackInfo) {
    this.#report(t, "decoding", 1);
    try {
      const pcm = await decodeMp3Apart(await Deno.readFile(this.#paths.get(t.id)!), {
        id: t.id,
        fileName: t.fileName,
      });
      if (!this.#wanted().includes(t.id)) return this.#report(t, "cached", 1);
      this.#output.addTrack(pcm);
      this.#decoded.set(t.id, pcm.rateHz);
      this.#report(t, "ready", 1);
      this.emit({ type: "track-ready", trackId: t.id, fileName: t.fileName });
    } catch (e) {
      this.#files.set(t.id, "failed");
      this.#report(t, "failed", 0, (e as Error).message.slice(0, 400));
    }
  }

  // ---------- song requests ----------

  async #request(path: string) {
    let file;
    try {
      file = await readTrackFile(path);
      scanMp3(file.bytes);
    } catch (e) {
      if (!(e instanceof TrackFileError || e instanceof Mp3FormatError)) throw e;
      const name = baseName(path);
      const why = e instanceof Mp3FormatError ? e.message : e.why;
      this.emit({ type: "error", message: `Cannot request "${name}": ${why}.` });
      return;
    }
    const tags = await readTags(file.bytes, file.fileName);
    const requestId = this.#requests.add(file.fileName, tags.title, file.bytes);
    this.#send({
      type: "request",
      requestId,
      fileName: file.fileName.slice(0, 255),
      title: tags.title,
      artist: tags.artist,
      sizeBytes: file.bytes.length,
      sha256: await sha256Hex(file.bytes),
    });
    this.#requests.event(requestId, "sent");
  }

  async #upload(requestId: number, token: string) {
    const r = this.#requests.get(requestId);
    if (!r) return;
    this.#requests.event(requestId, "uploading", undefined, 0);
    // Sent in slices so the upload can report its progress (a big file over a WAN is slow).
    const SLICE = 256 * 1024;
    let sent = 0, reported = 0;
    const body = new ReadableStream<Uint8Array>({
      pull: (ctl) => {
        if (sent >= r.bytes.length) return ctl.close();
        ctl.enqueue(r.bytes.slice(sent, sent + SLICE));
        sent = Math.min(r.bytes.length, sent + SLICE);
        if (sent / r.bytes.length - reported >= 0.1) {
          reported = sent / r.bytes.length;
          this.#requests.event(requestId, "uploading", undefined, reported);
        }
      },
    });
    try {
      const res = await fetch(`${this.#httpBase()}/requests/${token}`, {
        method: "PUT",
        body,
        signal: this.#uploads.signal,
      });
      await res.body?.cancel();
    } catch (e) {
      this.emit({
        type: "error",
        message: `Could not send "${r.fileName}" to the host: ${(e as Error).message}.`,
      });
    }
    // The outcome arrives as a requestResult message.
  }

  /** `http://host:port` of the host, with brackets around an IPv6 address. */
  #httpBase(): string {
    const { hostname, port } = this.opts;
    return `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  }

  run(c: Command): void {
    if (!LOCAL_COMMANDS.has(c.cmd)) {
      this.emit({
        type: "error",
        message: `Only the host controls "${c.cmd}". A peer can use: ${
          [...LOCAL_COMMANDS].join(", ")
        }.`,
      });
      return;
    }
    if (c.cmd === "request") return void this.#request(c.path);
    if (c.cmd === "queue") {
      return this.emit(queueEvent(this.#ids.map((id) => this.#tracks.get(id)!), this.#current));
    }
    if (c.cmd === "delay") return void this.#device.setDelay(c.ms);
    // The click test is the jam's: the host turns it on or off for every device.
    if (c.cmd === "clicks") return this.#send({ type: "clicks", on: c.on });
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
        clicks: this.#clicks,
        ready: [...this.#decoded.keys()],
        audio: this.#output.status,
      });
    } else if (c.cmd === "quit") {
      this.#send({ type: "bye" });
      this.#finish("quit");
    }
  }

  /** A track's sample rate: from the host's queue, else from decoding it. */
  #rateOf(trackId: string): number {
    return this.#tracks.get(trackId)?.rateHz ?? this.#decoded.get(trackId) ?? 48000;
  }

  /** The host's clock now, as this peer estimates it (its own clock until locked). */
  hostNowMs(): number {
    const e = this.#pinger?.filter.estimate;
    const now = this.clock.now();
    return e ? localToHost(e, now) : now;
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
    this.#download?.abort.abort();
    this.#uploads.abort();
    for (const t of this.#timers) clearInterval(t);
    this.#pinger?.stop();
    try {
      this.#ws?.close();
    } catch { /* closed */ }
    await this.#output.close();
  }
}

import { AudioOutput } from "../audio/output.ts";
import { DecodeError, decodeMp3 } from "../audio/decode.ts";
import { MAX_FILE_BYTES } from "../audio/mp3_scan.ts";
import type { SinkBackend } from "../audio/sink.ts";
import { clockColor } from "../net/clock_filter.ts";
import { ClockResponder } from "../net/clock_udp.ts";
import { Advertiser, lanAddresses } from "../net/discovery.ts";
import type { LocalClock } from "../net/local_clock.ts";
import { sha256Hex } from "../net/transfer.ts";
import { createApp, type SocketLike } from "../server/http.ts";
import { type ChannelMode, type Command, type EngineEvent } from "./commands.ts";
import {
  DEFAULT_SETTINGS,
  DeviceControls,
  type DeviceSettings,
  type SettingsStore,
} from "./device_settings.ts";
import { cleanName, dedupeName } from "./names.ts";
import {
  decodeMessage,
  encodeMessage,
  type HostToPeer,
  MAX_PEERS,
  type PeerInfo,
  type PeerToHost,
  PROTOCOL_VERSION,
  ProtocolError,
  type TrackInfo,
  type TrackStateName,
} from "./protocol.ts";

/** Lead added to "now" for every transport command: write-ahead (70 ms) + dispatch margin. */
export const BASE_LEAD_MS = 120;

interface Peer {
  id: number;
  name: string;
  ws: SocketLike;
  audio: { backend: string; device: boolean };
  clock:
    | { locked: boolean; offsetMs: number; driftPpm: number; rttMs: number; errorMs: number }
    | null;
  clockAtMs: number;
  tracks: Map<string, { state: TrackStateName; progress: number; error?: string }>;
  color: "green" | "yellow" | "red";
  settings: DeviceSettings;
}

interface HostTrack {
  info: TrackInfo;
  path: string;
  rateHz: number;
}

type Transport =
  | { state: "stopped" }
  | { state: "playing"; trackId: string; fromFrame: number; atHostMs: number }
  | { state: "paused"; trackId: string; frame: number };

export interface HostOptions {
  session: string;
  name: string;
  port: number;
  hostname?: string;
  audio: SinkBackend | "auto";
  wavPath?: string;
  advertise?: boolean;
  /** Speaker settings from the command line; the rest come from `settings`. */
  device?: Partial<DeviceSettings>;
  settings?: SettingsStore;
}

/** The host engine: session, queue, transport, file sharing and its own local playback. */
export class HostEngine {
  readonly #peers = new Map<number, Peer>();
  readonly #tracks = new Map<string, HostTrack>();
  #queue: string[] = [];
  #current = -1;
  #transport: Transport = { state: "stopped" };
  #nextId = 1;
  #server: Deno.HttpServer | null = null;
  #clockUdp: ClockResponder;
  #advertiser: Advertiser | null = null;
  #output: AudioOutput;
  #device: DeviceControls;
  #volume = 1;
  #muted = false;
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(
    readonly opts: HostOptions,
    readonly clock: LocalClock,
    readonly emit: (e: EngineEvent) => void,
  ) {
    this.#clockUdp = new ClockResponder({ port: opts.port, hostname: opts.hostname, clock });
    this.#output = new AudioOutput({ backend: opts.audio, wavPath: opts.wavPath, sim: clock.sim });
    this.#device = new DeviceControls(this.#output, opts.settings ?? null, emit);
  }

  async start(): Promise<void> {
    const app = createApp({
      trackPath: (id) => this.#tracks.get(id)?.path,
      onSocket: (ws) => this.#onSocket(ws),
    });
    this.#server = Deno.serve({
      port: this.opts.port,
      hostname: this.opts.hostname ?? "0.0.0.0",
      onListen: () => {},
    }, app.fetch);
    this.#clockUdp.start();
    const opened = await this.#output.opened();
    this.#output.onEvent = (e) => this.#onPlayerEvent(e);
    this.#output.onError = (text) => this.emit({ type: "error", message: text });
    this.#audioEvent(opened.backend, opened.audible, opened.failure);
    await this.#device.init(opened.device, this.opts.device ?? {});
    if (this.opts.advertise !== false) {
      this.#advertiser = new Advertiser({
        session: this.opts.session,
        hostName: this.opts.name,
        port: this.opts.port,
        peers: () => this.#peers.size,
        maxPeers: MAX_PEERS,
      });
      this.#advertiser.start();
    }
    this.#timers.push(setInterval(() => this.#tick(), 1000));
    this.emit({
      type: "session",
      role: "host",
      session: this.opts.session,
      name: this.opts.name,
      port: this.opts.port,
      host: lanAddresses()[0] ?? "127.0.0.1",
    });
  }

  #audioEvent(backend: string, audible: boolean, failure?: string) {
    this.emit({
      type: "audio",
      backend,
      audible,
      ...(audible ? {} : {
        warning: "No audio output detected — you won't hear playback" +
          (failure ? ` (${failure})` : ""),
      }),
    });
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    for (const p of this.#peers.values()) p.ws.close(1001, "host quit");
    this.#advertiser?.stop();
    this.#clockUdp.stop();
    await this.#output.close();
    await this.#server?.shutdown();
  }

  // ---------- commands ----------

  async run(c: Command): Promise<void> {
    switch (c.cmd) {
      case "add":
        return await this.add(c.path);
      case "play":
        return this.play();
      case "pause":
        return this.pause();
      case "resume":
        return this.resume();
      case "stop":
        return this.stopPlayback();
      case "seek":
        return this.seek(c.seconds);
      case "skip":
        return this.skipTrack();
      case "volume":
      case "mute":
      case "unmute":
        if (c.cmd === "volume") this.#volume = c.level;
        else this.#muted = c.cmd === "mute";
        this.#output.setVolume(this.#volume, this.#muted);
        this.emit({ type: "volume", level: this.#volume, muted: this.#muted });
        return;
      case "delay":
        return this.#device.setDelay(c.ms);
      case "channel":
        if (c.peer === undefined) return this.#device.setChannel(c.channel);
        return this.#assign(c.peer, c.channel);
      case "status":
        return this.#status();
      case "quit":
        return;
    }
  }

  /** Validates, hashes and decodes a file, then queues and distributes it. */
  async add(path: string): Promise<void> {
    const fileName = path.split(/[\\/]/).pop() || path;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      const st = await Deno.stat(path);
      if (!st.isFile) throw new Error("it is not a file");
      if (st.size > MAX_FILE_BYTES) {
        throw new Error(`the file is ${(st.size / 1048576).toFixed(1)} MB; the limit is 50 MB`);
      }
      bytes = await Deno.readFile(path);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "the file does not exist"
        : (e as Error).message;
      this.emit({ type: "error", message: `Cannot use "${fileName}": ${why}` });
      return;
    }
    const id = await sha256Hex(bytes);
    if (this.#tracks.has(id)) {
      this.emit({ type: "notice", level: "info", message: `"${fileName}" is already queued.` });
      return;
    }
    try {
      const pcm = await decodeMp3(bytes, { id, fileName });
      const info: TrackInfo = {
        id,
        fileName,
        title: fileName.replace(/\.mp3$/i, ""),
        sizeBytes: bytes.length,
        durationSec: pcm.left.length / pcm.rateHz,
      };
      this.#tracks.set(id, { info, path: await Deno.realPath(path), rateHz: pcm.rateHz });
      this.#output.addTrack(pcm);
      this.#queue.push(id);
      if (this.#current < 0) this.#current = 0;
      this.emit({ type: "track-ready", trackId: id, fileName });
      this.#broadcastQueue();
      this.#broadcast({ type: "load", track: info });
      this.#checkAllReady(id);
    } catch (e) {
      this.emit({
        type: "error",
        message: e instanceof DecodeError
          ? e.message
          : `Cannot use "${fileName}": ${(e as Error).message}`,
      });
    }
  }

  #currentTrack(): HostTrack | undefined {
    return this.#tracks.get(this.#queue[this.#current]);
  }

  /** Peers (by name) not yet ready for a track, with what they are doing. */
  #notReady(trackId: string): string[] {
    const out: string[] = [];
    for (const p of this.#peers.values()) {
      const st = p.tracks.get(trackId);
      if (st?.state === "ready") continue;
      const what = !st
        ? "waiting"
        : st.state === "downloading"
        ? `downloading ${Math.round(st.progress * 100)}%`
        : st.state === "failed"
        ? `failed: ${st.error ?? "unknown error"}`
        : st.state;
      out.push(`${p.name} (${what})`);
    }
    return out;
  }

  #leadMs(): number {
    let worst = 0;
    for (const p of this.#peers.values()) worst = Math.max(worst, p.clock?.rttMs ?? 50);
    return BASE_LEAD_MS + worst;
  }

  play(fromFrame = 0): void {
    const t = this.#currentTrack();
    if (!t) {
      this.emit({ type: "error", message: "Nothing to play: the queue is empty. Use add PATH." });
      return;
    }
    if (this.#transport.state === "playing") {
      this.emit({ type: "notice", level: "info", message: "Already playing." });
      return;
    }
    if (
      this.#transport.state === "paused" && this.#transport.trackId === t.info.id && fromFrame === 0
    ) {
      fromFrame = this.#transport.frame;
    }
    const waiting = this.#notReady(t.info.id);
    if (waiting.length) {
      this.emit({
        type: "error",
        message: `Cannot play "${t.info.title}" yet: not ready on ${waiting.join(", ")}.`,
      });
      return;
    }
    this.#startAt(t, fromFrame, this.clock.now() + this.#leadMs());
  }

  #startAt(t: HostTrack, fromFrame: number, atHostMs: number): void {
    this.#transport = { state: "playing", trackId: t.info.id, fromFrame, atHostMs };
    this.#dispatch({ type: "play", trackId: t.info.id, fromFrame, atHostMs });
    this.#output.schedule({ kind: "play", trackId: t.info.id, fromFrame, atHostMs });
    this.emit({
      type: "playing",
      trackId: t.info.id,
      title: t.info.title,
      positionSec: fromFrame / t.rateHz,
      atHostMs,
    });
  }

  /** Frame of the current track heard at host time `atMs`. */
  #frameAt(atMs: number): number {
    const tr = this.#transport;
    if (tr.state === "paused") return tr.frame;
    if (tr.state !== "playing") return 0;
    const t = this.#tracks.get(tr.trackId)!;
    return Math.max(0, tr.fromFrame + ((atMs - tr.atHostMs) * t.rateHz) / 1000);
  }

  pause(): void {
    const tr = this.#transport;
    if (tr.state !== "playing") {
      this.emit({ type: "notice", level: "info", message: "Not playing." });
      return;
    }
    const at = this.clock.now() + this.#leadMs();
    const frame = this.#frameAt(at);
    this.#transport = { state: "paused", trackId: tr.trackId, frame };
    this.#silenceAt(at);
    const t = this.#tracks.get(tr.trackId)!;
    this.emit({ type: "paused", trackId: tr.trackId, positionSec: frame / t.rateHz, atHostMs: at });
  }

  #silenceAt(atHostMs: number) {
    this.#dispatch({ type: "pause", atHostMs });
    this.#output.schedule({ kind: "silence", atHostMs });
  }

  resume(): void {
    if (this.#transport.state !== "paused") {
      this.emit({ type: "notice", level: "info", message: "Not paused." });
      return;
    }
    this.play();
  }

  stopPlayback(): void {
    const at = this.clock.now() + this.#leadMs();
    if (this.#transport.state === "playing") this.#silenceAt(at);
    this.#transport = { state: "stopped" };
    this.emit({ type: "stopped", atHostMs: at });
  }

  seek(seconds: number): void {
    const t = this.#currentTrack();
    if (!t) {
      this.emit({ type: "error", message: "Nothing to seek: the queue is empty." });
      return;
    }
    if (seconds >= t.info.durationSec) {
      this.emit({
        type: "error",
        message: `Cannot seek to ${seconds} s: "${t.info.title}" is ${
          t.info.durationSec.toFixed(1)
        } s long.`,
      });
      return;
    }
    const frame = Math.round(seconds * t.rateHz);
    const tr = this.#transport;
    if (tr.state === "playing") {
      this.#startAt(t, frame, this.clock.now() + this.#leadMs());
    } else {
      this.#transport = { state: "paused", trackId: t.info.id, frame };
      this.emit({
        type: "paused",
        trackId: t.info.id,
        positionSec: seconds,
        atHostMs: this.clock.now(),
      });
    }
  }

  skipTrack(): void {
    if (this.#current + 1 >= this.#queue.length) {
      this.emit({
        type: "error",
        message: "Nothing to skip to: this is the last track in the queue.",
      });
      return;
    }
    const wasPlaying = this.#transport.state === "playing";
    this.#current++;
    this.#broadcastQueue();
    if (wasPlaying) {
      this.#transport = { state: "stopped" };
      this.play();
      // Not everyone has the next track yet: stop the old one rather than play on alone.
      if ((this.#transport as Transport).state !== "playing") {
        this.#silenceAt(this.clock.now() + this.#leadMs());
      }
    } else {
      this.#transport = { state: "stopped" };
    }
  }

  #onPlayerEvent(e: import("../audio/player.ts").PlayerEvent): void {
    if (e.type === "started") {
      this.emit({ type: "started", trackId: e.trackId, atHostMs: e.atHostMs });
    } else if (e.type === "ended") {
      this.emit({ type: "ended", trackId: e.trackId, atHostMs: e.atHostMs });
      const tr = this.#transport;
      if (tr.state === "playing" && tr.trackId === e.trackId) {
        this.#transport = { state: "stopped" };
        if (this.#current + 1 < this.#queue.length) {
          this.#current++;
          this.#broadcastQueue();
          this.play();
        } else {
          this.emit({ type: "stopped", atHostMs: e.atHostMs });
        }
      }
    } else if (e.type === "resync") {
      this.emit({
        type: "notice",
        level: "warn",
        message: `Resynchronised playback (was ${e.errorMs.toFixed(1)} ms off).`,
      });
    }
  }

  #status(): void {
    const t = this.#currentTrack();
    const now = this.clock.now();
    this.emit({
      type: "status",
      role: "host",
      session: this.opts.session,
      transport: this.#transport.state,
      track: t?.info.title ?? null,
      positionSec: t ? this.#frameAt(now) / t.rateHz : 0,
      volume: this.#volume,
      muted: this.#muted,
      ...this.#device.settings,
      peers: this.#peerList(),
      audio: this.#output.status,
    });
  }

  // ---------- peers ----------

  #peerList(): PeerInfo[] {
    const cur = this.#queue[this.#current];
    return [...this.#peers.values()].map((p) => ({
      id: p.id,
      name: p.name,
      clock: p.color,
      offsetMs: p.clock?.offsetMs ?? 0,
      rttMs: p.clock?.rttMs ?? 0,
      audio: p.audio,
      track: (cur && p.tracks.get(cur)?.state) || "none",
      ...p.settings,
    }));
  }

  #assign(name: string, channel: ChannelMode) {
    const want = name.toLowerCase();
    const p = [...this.#peers.values()].find((x) => x.name.toLowerCase() === want);
    if (!p) {
      const names = [...this.#peers.values()].map((x) => x.name).join(", ") || "none";
      this.emit({ type: "error", message: `No peer named "${name}". Peers: ${names}.` });
      return;
    }
    this.#send(p, { type: "assign", channel });
  }

  #send(p: Peer, m: HostToPeer) {
    try {
      p.ws.send(encodeMessage(m));
    } catch { /* socket closing; onClose cleans up */ }
  }
  #broadcast(m: HostToPeer) {
    for (const p of this.#peers.values()) this.#send(p, m);
  }

  /** Sends to the farthest peer first, spacing sends by half-RTT differences (§ staggering). */
  #dispatch(m: HostToPeer) {
    const peers = [...this.#peers.values()].sort((a, b) =>
      (b.clock?.rttMs ?? 0) - (a.clock?.rttMs ?? 0)
    );
    const farthest = (peers[0]?.clock?.rttMs ?? 0) / 2;
    for (const p of peers) {
      const wait = farthest - (p.clock?.rttMs ?? 0) / 2;
      if (wait < 1) this.#send(p, m);
      else setTimeout(() => this.#send(p, m), wait);
    }
  }

  #broadcastQueue() {
    this.#broadcast(this.#queueMsg());
    this.emit({
      type: "queue",
      tracks: this.#queue.map((id) => this.#tracks.get(id)!.info),
      current: this.#current,
    });
  }
  #queueMsg(): HostToPeer {
    return {
      type: "queue",
      tracks: this.#queue.map((id) => this.#tracks.get(id)!.info),
      current: this.#current,
    };
  }
  #broadcastPeers() {
    this.#broadcast({ type: "peers", peers: this.#peerList() });
    this.#advertiser?.announce();
  }

  #onSocket(ws: SocketLike) {
    let peer: Peer | null = null;
    return {
      onMessage: (data: string | Uint8Array) => {
        let m: PeerToHost;
        try {
          m = decodeMessage(data, "peer") as PeerToHost;
        } catch (e) {
          const why = e instanceof ProtocolError ? e.message : "unreadable message";
          this.emit({
            type: "notice",
            level: "warn",
            message: `Rejected a message from ${peer?.name ?? "a new connection"}: ${why}.`,
          });
          ws.send(
            encodeMessage({ type: "notice", level: "error", text: `Message rejected: ${why}.` }),
          );
          if (!peer) ws.close(1008, "protocol error");
          return;
        }
        if (!peer) {
          if (m.type !== "hello") {
            ws.close(1008, "expected hello");
            return;
          }
          peer = this.#admit(ws, m);
          return;
        }
        this.#onPeerMessage(peer, m);
      },
      onClose: () => {
        if (!peer) return;
        this.#peers.delete(peer.id);
        this.emit({ type: "peer-left", id: peer.id, name: peer.name, reason: "disconnected" });
        this.#broadcastPeers();
        peer = null;
      },
    };
  }

  #admit(ws: SocketLike, m: Extract<PeerToHost, { type: "hello" }>): Peer | null {
    const refuse = (reason: string) => {
      ws.send(encodeMessage({ type: "refused", reason }));
      ws.close(1000, "refused");
      this.emit({ type: "peer-refused", name: cleanName(m.name), reason });
      return null;
    };
    if (m.protocolVersion !== PROTOCOL_VERSION) {
      return refuse(
        `This jam speaks protocol version ${PROTOCOL_VERSION}; your PhaseLock speaks ${m.protocolVersion}. Update PhaseLock to join.`,
      );
    }
    if (this.#peers.size >= MAX_PEERS) {
      return refuse(
        `"${this.opts.session}" is full: it already has ${MAX_PEERS} of ${MAX_PEERS} peers.`,
      );
    }
    const wanted = cleanName(m.name);
    if (!wanted) return refuse("Please choose a display name with at least one visible character.");
    const name = dedupeName(wanted, [
      this.opts.name,
      ...[...this.#peers.values()].map((p) => p.name),
    ]);
    const peer: Peer = {
      id: this.#nextId++,
      name,
      ws,
      audio: m.audio,
      clock: null,
      clockAtMs: this.clock.now(),
      tracks: new Map(),
      color: "red",
      settings: { ...DEFAULT_SETTINGS },
    };
    this.#peers.set(peer.id, peer);
    this.#send(peer, {
      type: "welcome",
      protocolVersion: PROTOCOL_VERSION,
      peerId: peer.id,
      name,
      session: this.opts.session,
      hostName: this.opts.name,
    });
    this.#send(peer, this.#queueMsg());
    for (const id of this.#queue) {
      this.#send(peer, { type: "load", track: this.#tracks.get(id)!.info });
    }
    const tr = this.#transport;
    // A late joiner gets the running schedule: its player starts at the current position.
    if (tr.state === "playing") {
      this.#send(peer, {
        type: "play",
        trackId: tr.trackId,
        fromFrame: tr.fromFrame,
        atHostMs: tr.atHostMs,
      });
    }
    this.emit({ type: "peer-joined", id: peer.id, name });
    if (!m.audio.device) {
      this.emit({
        type: "notice",
        level: "warn",
        message: `${name} has no audio output and will not hear playback.`,
      });
    }
    this.#broadcastPeers();
    return peer;
  }

  #onPeerMessage(p: Peer, m: PeerToHost) {
    switch (m.type) {
      case "clock":
        p.clock = m;
        p.clockAtMs = this.clock.now();
        this.#recolor(p);
        return;
      case "trackState": {
        const t = this.#tracks.get(m.trackId);
        if (!t) return;
        p.tracks.set(m.trackId, { state: m.state, progress: m.progress, error: m.error });
        this.emit({
          type: "transfer",
          trackId: m.trackId,
          fileName: t.info.fileName,
          peer: p.name,
          state: m.state,
          progress: m.progress,
          ...(m.error ? { error: m.error } : {}),
        });
        if (m.state === "ready") {
          this.emit({
            type: "track-ready",
            trackId: m.trackId,
            fileName: t.info.fileName,
            peer: p.name,
          });
          this.#checkAllReady(m.trackId);
        }
        if (m.state === "failed") {
          this.emit({
            type: "error",
            message: `${p.name} could not get "${t.info.fileName}": ${m.error ?? "unknown error"}.`,
          });
        }
        this.#broadcastPeers();
        return;
      }
      case "settings":
        p.settings = { channel: m.channel, speakerDelayMs: m.speakerDelayMs };
        this.emit({ type: "peers", peers: this.#peerList() });
        this.#broadcastPeers();
        return;
      case "bye":
        p.ws.close(1000, "bye");
        return;
      case "hello":
        this.#send(p, { type: "notice", level: "warn", text: "Already joined." });
        return;
    }
  }

  #checkAllReady(trackId: string) {
    if (this.#notReady(trackId).length === 0) {
      this.emit({
        type: "track-ready-all",
        trackId,
        fileName: this.#tracks.get(trackId)!.info.fileName,
      });
    }
  }

  #recolor(p: Peer) {
    const c = clockColor(p.clock, this.clock.now() - p.clockAtMs);
    if (c !== p.color) {
      p.color = c;
      this.emit({ type: "peers", peers: this.#peerList() });
      this.#broadcastPeers();
    }
  }

  #tick() {
    this.#broadcast({ type: "heartbeat", hostMs: this.clock.now() });
    for (const p of this.#peers.values()) this.#recolor(p);
  }
}

import { AudioOutput } from "../audio/output.ts";
import { DecodeError, decodeMp3 } from "../audio/decode.ts";
import type { PlayerEvent } from "../audio/player.ts";
import type { SinkBackend } from "../audio/sink.ts";
import { baseName, readTags, readTrackFile, TrackFileError } from "../audio/track_file.ts";
import { clockColor } from "../net/clock_filter.ts";
import { ClockResponder } from "../net/clock_udp.ts";
import { Advertiser, lanAddresses } from "../net/discovery.ts";
import type { LocalClock } from "../net/local_clock.ts";
import { sha256Hex } from "../net/transfer.ts";
import { createApp, type SocketLike } from "../server/http.ts";
import { type ChannelMode, type Command, type EngineEvent } from "./commands.ts";
import { Inbox } from "./inbox.ts";
import { MAX_QUEUE_TRACKS, queueEvent, TrackQueue } from "./queue.ts";
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

/** Heartbeat period: a peer that misses five in a row (2.5 s) ends the session. */
export const HEARTBEAT_MS = 500;

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
  /** Tracks the host was told to play without this peer (`skip-peer`). */
  skipped: Set<string>;
}

interface HostTrack {
  info: TrackInfo;
  path: string;
  rateHz: number;
  frames: number;
  cover: { mime: string; bytes: Uint8Array } | null;
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
  /** Where accepted song requests are stored. */
  requestDir: string;
  /** Speaker settings from the command line; the rest come from `settings`. */
  device?: Partial<DeviceSettings>;
  settings?: SettingsStore;
}

/** The host engine: session, queue, transport, file sharing and its own local playback. */
export class HostEngine {
  readonly #peers = new Map<number, Peer>();
  readonly #tracks = new Map<string, HostTrack>();
  readonly #queue = new TrackQueue((id) => this.#tracks.get(id)?.info.title ?? id);
  #transport: Transport = { state: "stopped" };
  /** The transition already scheduled on every device: `trackId` starts at `atHostMs`. */
  #armed: { trackId: string; atHostMs: number } | null = null;
  #endTimer: ReturnType<typeof setTimeout> | undefined;
  /** The current track should start as soon as every device has it (auto-advance waited). */
  #startWhenReady = false;
  /** Tracks decoded into the audio engine (the current and the next), and those in progress. */
  readonly #decoded = new Set<string>();
  readonly #decoding = new Set<string>();
  readonly #inbox: Inbox;
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
    this.#inbox = new Inbox(opts.requestDir, {
      send: (peerId, m) => {
        const p = this.#peers.get(peerId);
        if (p) this.#send(p, m);
      },
      emit,
      isQueued: (sha) => this.#tracks.has(sha),
      add: (path, o) => this.add(path, o),
    });
  }

  async start(): Promise<void> {
    const app = createApp({
      trackPath: (id) => this.#tracks.get(id)?.path,
      cover: (id) => this.#tracks.get(id)?.cover ?? undefined,
      upload: (token, body) => this.#inbox.upload(token, body),
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
    this.#timers.push(
      setInterval(
        () => this.#broadcast({ type: "heartbeat", hostMs: this.clock.now() }),
        HEARTBEAT_MS,
      ),
    );
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
    clearTimeout(this.#endTimer);
    for (const p of this.#peers.values()) p.ws.close(1001, "host quit");
    this.#advertiser?.stop();
    this.#clockUdp.stop();
    await this.#output.close();
    await this.#server?.shutdown();
  }

  // ---------- commands ----------

  async run(c: Command): Promise<void> {
    if (["play", "pause", "resume", "stop", "seek", "skip"].includes(c.cmd)) {
      this.#startWhenReady = false;
    }
    switch (c.cmd) {
      case "add":
        return void await this.add(c.path);
      case "queue":
        return this.#emitQueue();
      case "move": {
        const bad = this.#queue.move(c.from, c.to);
        if (bad) return this.emit({ type: "error", message: `Cannot move: ${bad}` });
        return this.#queueChanged();
      }
      case "remove":
        return this.#remove(c.position);
      case "inbox":
        return this.emit({ type: "inbox", requests: this.#inbox.list() });
      case "accept":
        return this.#inbox.accept(c.id);
      case "reject":
        return this.#inbox.reject(c.id);
      case "retry":
      case "skip-peer":
        return this.#transferDecision(c.cmd, c.peer);
      case "request":
        return this.emit({
          type: "error",
          message: "The host adds songs directly: use add PATH. Peers send requests.",
        });
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

  /**
   * Validates, hashes, decodes and tags a file, then queues and distributes it. Returns null,
   * or the sentence (also emitted as an error) that says why the file cannot be used.
   */
  async add(path: string, opts: { fileName?: string; requestedBy?: string } = {}): Promise<
    string | null
  > {
    const fail = (message: string) => {
      this.emit({ type: "error", message });
      return message;
    };
    if (this.#queue.full) {
      const name = opts.fileName ?? baseName(path);
      return fail(`Cannot add "${name}": the queue is full (${MAX_QUEUE_TRACKS} tracks).`);
    }
    let file;
    try {
      file = await readTrackFile(path);
    } catch (e) {
      if (e instanceof TrackFileError) return fail(e.message);
      throw e;
    }
    const fileName = opts.fileName ?? file.fileName;
    const id = await sha256Hex(file.bytes);
    if (this.#tracks.has(id)) {
      this.emit({ type: "notice", level: "info", message: `"${fileName}" is already queued.` });
      return `"${fileName}" is already in the queue.`;
    }
    let pcm;
    try {
      pcm = await decodeMp3(file.bytes, { id, fileName });
    } catch (e) {
      return fail(
        e instanceof DecodeError ? e.message : `Cannot use "${fileName}": ${(e as Error).message}`,
      );
    }
    const tags = await readTags(file.bytes, fileName);
    const info: TrackInfo = {
      id,
      fileName,
      title: tags.title,
      artist: tags.artist,
      album: tags.album,
      sizeBytes: file.bytes.length,
      durationSec: pcm.left.length / pcm.rateHz,
      ...(tags.cover
        ? { cover: { mime: tags.cover.mime, sizeBytes: tags.cover.bytes.length } }
        : {}),
    };
    this.#tracks.set(id, {
      info,
      path: await Deno.realPath(path),
      rateHz: pcm.rateHz,
      frames: pcm.left.length,
      cover: tags.cover,
    });
    this.#queue.add(id);
    if (this.#queue.wanted().includes(id)) {
      this.#output.addTrack(pcm);
      this.#decoded.add(id);
    }
    this.emit({
      type: "track-ready",
      trackId: id,
      fileName,
      ...(opts.requestedBy ? { requestedBy: opts.requestedBy } : {}),
    });
    this.#queueChanged();
    this.#onReady(id);
    return null;
  }

  #remove(position: number): void {
    const id = this.#queue.ids[position - 1];
    const tr = this.#transport;
    if (id && tr.state !== "stopped" && tr.trackId === id) {
      this.emit({
        type: "error",
        message: `Cannot remove ${this.#queue.describe(id)}: it is playing. Skip it or stop first.`,
      });
      return;
    }
    const t = this.#removeAt(position);
    if (t) this.emit({ type: "notice", level: "info", message: `Removed "${t.info.title}".` });
  }

  /** Takes the track at `position` out of the queue and the shared files; tells everyone. */
  #removeAt(position: number): HostTrack | null {
    const r = this.#queue.remove(position);
    if ("error" in r) {
      this.emit({ type: "error", message: `Cannot remove: ${r.error}` });
      return null;
    }
    const t = this.#tracks.get(r.id)!;
    this.#tracks.delete(r.id);
    this.#queueChanged();
    return t;
  }

  /** After any change of order or current track: tell everyone, decode, re-plan the transition. */
  #queueChanged() {
    this.#emitQueue(true);
    this.#keepDecoded();
    this.#arm();
  }

  /** Keeps exactly the current and next track decoded in the audio engine. */
  #keepDecoded() {
    const wanted = this.#queue.wanted();
    for (const id of this.#decoded) {
      if (!wanted.includes(id)) {
        this.#decoded.delete(id);
        this.#output.dropTrack(id);
      }
    }
    for (const id of wanted) {
      if (this.#decoded.has(id) || this.#decoding.has(id)) continue;
      const t = this.#tracks.get(id)!;
      this.#decoding.add(id);
      this.#decodeAgain(t)
        .then((pcm) => {
          if (!this.#queue.wanted().includes(id)) return;
          this.#output.addTrack(pcm);
          this.#decoded.add(id);
          this.#onReady(id);
        })
        .catch((e) => this.#dropUnreadable(id, (e as Error).message))
        .finally(() => this.#decoding.delete(id));
    }
  }

  /** Reads a queued file again (it must still be the file that was added) and decodes it. */
  async #decodeAgain(t: HostTrack) {
    let bytes;
    try {
      bytes = await Deno.readFile(t.path);
    } catch (e) {
      throw new Error(
        e instanceof Deno.errors.NotFound ? "the file is gone" : (e as Error).message,
      );
    }
    if (await sha256Hex(bytes) !== t.info.id) {
      throw new Error("the file changed since it was added");
    }
    return await decodeMp3(bytes, { id: t.info.id, fileName: t.info.fileName });
  }

  /** A queued file that can no longer be read leaves the queue, with a sentence. */
  #dropUnreadable(id: string, why: string) {
    const at = this.#queue.ids.indexOf(id);
    const t = at < 0 ? null : this.#removeAt(at + 1);
    if (!t) return;
    this.emit({
      type: "error",
      message: `Cannot play "${t.info.fileName}": ${why}. It was removed from the queue.`,
    });
  }

  #currentTrack(): HostTrack | undefined {
    const id = this.#queue.currentId;
    return id === undefined ? undefined : this.#tracks.get(id);
  }

  /** Devices (by name) not yet ready for a track, with what they are doing. */
  #notReady(trackId: string): string[] {
    const out: string[] = [];
    if (!this.#decoded.has(trackId)) out.push(`${this.opts.name} (host, decoding)`);
    for (const p of this.#peers.values()) {
      const st = p.tracks.get(trackId);
      if (st?.state === "ready" || p.skipped.has(trackId)) continue;
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
    this.#armed = null; // this play replaces every later schedule on every device
    this.#dispatch({ type: "play", trackId: t.info.id, fromFrame, atHostMs });
    this.#output.schedule({ kind: "play", trackId: t.info.id, fromFrame, atHostMs });
    this.#emitPlaying(t, fromFrame, atHostMs);
    this.#arm();
  }

  #emitPlaying(t: HostTrack, fromFrame: number, atHostMs: number) {
    const { id, title, artist, album, durationSec } = t.info;
    this.emit({
      type: "playing",
      trackId: id,
      title,
      artist,
      album,
      durationSec,
      positionSec: fromFrame / t.rateHz,
      atHostMs,
    });
  }

  /** Host time at which the playing track's last frame has been heard, if playing. */
  #endsAt(): number | null {
    const tr = this.#transport;
    if (tr.state !== "playing") return null;
    const t = this.#tracks.get(tr.trackId)!;
    return tr.atHostMs + ((t.frames - tr.fromFrame) * 1000) / t.rateHz;
  }

  /**
   * Plans the transition to the next track: once the next track is ready everywhere, every
   * device is told to start it at the exact host time the current one ends, so it begins on
   * the frame after the last one, the same on all devices. Re-run after anything that changes
   * the next track, its readiness or the end time.
   */
  #arm() {
    clearTimeout(this.#endTimer);
    const end = this.#endsAt();
    if (end === null) {
      this.#armed = null;
      return;
    }
    const next = this.#queue.nextId;
    const want = next !== undefined && this.#notReady(next).length === 0 ? next : undefined;
    const armed = this.#armed;
    if (want !== armed?.trackId || (armed && armed.atHostMs !== end)) {
      if (want || armed) {
        this.#dispatch({ type: "next", ...(want ? { trackId: want } : {}), atHostMs: end });
        this.#output.schedule(
          want
            ? { kind: "play", trackId: want, fromFrame: 0, atHostMs: end }
            : { kind: "silence", atHostMs: end },
        );
      }
      this.#armed = want ? { trackId: want, atHostMs: end } : null;
    }
    this.#endTimer = setTimeout(() => this.#trackEnded(end), Math.max(0, end - this.clock.now()));
  }

  /** The current track has just ended (by the schedule): move the queue on. */
  #trackEnded(end: number) {
    if (this.#endsAt() !== end) return;
    const armed = this.#armed;
    this.#armed = null;
    if (armed && armed.trackId === this.#queue.nextId) {
      this.#queue.advance();
      const t = this.#tracks.get(armed.trackId)!;
      this.#transport = { state: "playing", trackId: t.info.id, fromFrame: 0, atHostMs: end };
      this.#emitPlaying(t, 0, end);
      this.#queueChanged();
      return;
    }
    this.#transport = { state: "stopped" };
    if (this.#queue.advance()) {
      const t = this.#currentTrack()!;
      this.#startWhenReady = true;
      this.#queueChanged();
      this.emit({
        type: "notice",
        level: "warn",
        message: `"${t.info.title}" waits for ${
          this.#notReady(t.info.id).join(", ")
        }; it starts when they are ready (or use skip-peer NAME).`,
      });
    } else {
      this.emit({ type: "stopped", atHostMs: end });
      this.emit({ type: "notice", level: "info", message: "End of the queue." });
    }
  }

  /** Frame of the current track heard at host time `atMs`. */
  #frameAt(atMs: number): number {
    const tr = this.#transport;
    if (tr.state === "paused") return tr.frame;
    if (tr.state !== "playing") return 0;
    const t = this.#tracks.get(tr.trackId)!;
    const frame = tr.fromFrame + ((atMs - tr.atHostMs) * t.rateHz) / 1000;
    // Between a track's end and the timer that moves the queue on, it rests on its last frame.
    return Math.min(t.frames, Math.max(0, frame));
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
    clearTimeout(this.#endTimer);
    this.#armed = null;
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
    const armed = this.#armed;
    if (armed && armed.atHostMs <= this.clock.now() + this.#leadMs()) {
      // The next track starts sooner than a skip could take effect: it is already the skip.
      const title = this.#tracks.get(armed.trackId)!.info.title;
      this.emit({ type: "notice", level: "info", message: `Already moving on to "${title}".` });
      return;
    }
    const wasPlaying = this.#transport.state === "playing";
    if (!this.#queue.advance()) {
      this.emit({
        type: "error",
        message: "Nothing to skip to: this is the last track in the queue.",
      });
      return;
    }
    this.#transport = { state: "stopped" };
    this.#queueChanged();
    if (!wasPlaying) return;
    this.play();
    // Not everyone has the next track yet: stop the old one and start when they do.
    if ((this.#transport as Transport).state !== "playing") {
      this.#silenceAt(this.clock.now() + this.#leadMs());
      this.#startWhenReady = true;
    }
  }

  #onPlayerEvent(e: PlayerEvent): void {
    if (e.type === "started" || e.type === "ended") {
      this.emit({ type: e.type, trackId: e.trackId, atHostMs: e.atHostMs });
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
      queuePosition: this.#queue.current + 1,
      queueLength: this.#queue.ids.length,
      // Set when the queue waits for devices to get the current track.
      waitingFor: this.#startWhenReady && t ? this.#notReady(t.info.id) : [],
      inbox: this.#inbox.list().length,
      volume: this.#volume,
      muted: this.#muted,
      ...this.#device.settings,
      peers: this.#peerList(),
      audio: this.#output.status,
    });
  }

  // ---------- peers ----------

  #peerList(): PeerInfo[] {
    const cur = this.#queue.currentId;
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

  /** The peer with this display name (any case), or null after emitting a sentence. */
  #peerNamed(name: string): Peer | null {
    const want = name.toLowerCase();
    const p = [...this.#peers.values()].find((x) => x.name.toLowerCase() === want);
    if (!p) {
      const names = [...this.#peers.values()].map((x) => x.name).join(", ") || "none";
      this.emit({ type: "error", message: `No peer named "${name}". Peers: ${names}.` });
    }
    return p ?? null;
  }

  #assign(name: string, channel: ChannelMode) {
    const p = this.#peerNamed(name);
    if (p) this.#send(p, { type: "assign", channel });
  }

  /** `retry PEER`: ask it to fetch its failed tracks again; `skip-peer PEER`: play without it. */
  #transferDecision(cmd: "retry" | "skip-peer", name: string) {
    const p = this.#peerNamed(name);
    if (!p) return;
    const missing = this.#queue.wanted().filter((id) => p.tracks.get(id)?.state !== "ready");
    const titles = missing.map((id) => `"${this.#tracks.get(id)!.info.title}"`).join(" and ");
    if (cmd === "retry") {
      // A skipped track stays skipped (the others do not start waiting again); it counts as
      // ready for this peer once the peer reports it ready.
      this.#send(p, { type: "retry" });
      this.emit({ type: "notice", level: "info", message: `Asked ${p.name} to try again.` });
      return;
    }
    if (!missing.length) {
      this.emit({
        type: "notice",
        level: "info",
        message: `${p.name} already has the current and next track; nothing to skip.`,
      });
      return;
    }
    for (const id of missing) p.skipped.add(id);
    this.emit({
      type: "notice",
      level: "info",
      message: `Playing ${titles} without waiting for ${p.name}; they join in once they have it.`,
    });
    for (const id of missing) this.#onReady(id);
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

  /** Emits the queue as an event (positions 1-based); with `broadcast`, tells peers too. */
  #emitQueue(broadcast = false) {
    const m = this.#queueMsg();
    if (broadcast) this.#broadcast(m);
    this.emit(queueEvent(m.tracks, m.current));
  }
  #queueMsg(): Extract<HostToPeer, { type: "queue" }> {
    return {
      type: "queue",
      tracks: this.#queue.ids.map((id) => this.#tracks.get(id)!.info),
      current: this.#queue.current,
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
        this.#inbox.peerLeft(peer.id, peer.name);
        this.#broadcastPeers();
        // Whatever waited for this peer may go ahead now.
        for (const id of this.#queue.wanted()) this.#onReady(id);
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
      skipped: new Set(),
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
    // The queue tells the peer what to fetch; it fetches the current track first.
    this.#send(peer, this.#queueMsg());
    const tr = this.#transport;
    // A late joiner gets the running schedule: its player starts at the current position.
    if (tr.state === "playing") {
      this.#send(peer, {
        type: "play",
        trackId: tr.trackId,
        fromFrame: tr.fromFrame,
        atHostMs: tr.atHostMs,
      });
      if (this.#armed) this.#send(peer, { type: "next", ...this.#armed });
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
          p.skipped.delete(m.trackId);
          this.emit({
            type: "track-ready",
            trackId: m.trackId,
            fileName: t.info.fileName,
            peer: p.name,
          });
          this.#onReady(m.trackId);
        }
        if (m.state === "failed") {
          const error = m.error ?? "unknown error";
          this.emit({
            type: "transfer-failed",
            peer: p.name,
            trackId: m.trackId,
            fileName: t.info.fileName,
            error,
          });
          this.emit({
            type: "error",
            message: `${p.name} could not get "${t.info.fileName}": ${error}. ` +
              `Use retry ${p.name} to try again, or skip-peer ${p.name} to play without them.`,
          });
        }
        this.#broadcastPeers();
        return;
      }
      case "request":
        return this.#inbox.offer(p, m);
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

  /** A device got a track (or stopped mattering for it): start or arm what waited for it. */
  #onReady(trackId: string) {
    const t = this.#tracks.get(trackId);
    if (!t || this.#notReady(trackId).length > 0) return;
    this.emit({ type: "track-ready-all", trackId, fileName: t.info.fileName });
    if (this.#startWhenReady && trackId === this.#queue.currentId) {
      this.#startWhenReady = false;
      this.play();
    } else if (trackId === this.#queue.nextId) {
      this.#arm();
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
    for (const p of this.#peers.values()) this.#recolor(p);
  }
}

/**
 * The host engine: the facade the command line (and the app) drives. It owns the tracks and the
 * queue and wires the pieces that do the work: {@link PeerSet} (who is in the jam),
 * {@link Transport} (play, pause, seek, skip and gapless transitions), {@link Distribution}
 * (which device has which track, the host's decoded audio), the {@link Inbox} of song requests,
 * and the runtime edges — HTTP/WebSocket server, clock responder, mDNS, audio output.
 */
import { audioEvent, AudioOutput } from "../audio/output.ts";
import { DecodeError } from "../audio/decode.ts";
import { decodeMp3Apart } from "../audio/decode_native.ts";
import type { PlayerEvent } from "../audio/player.ts";
import type { SinkBackend } from "../audio/sink.ts";
import { baseName, readTags, readTrackFile, TrackFileError } from "../audio/track_file.ts";
import { ClockResponder } from "../net/clock_udp.ts";
import { Advertiser, lanAddresses } from "../net/discovery.ts";
import type { LocalClock } from "../net/local_clock.ts";
import { sha256Hex } from "../net/transfer.ts";
import { createApp, type PeerPageAssets } from "../server/http.ts";
import {
  type CalibratedDevice,
  type ChannelMode,
  type Command,
  type EngineEvent,
} from "./commands.ts";
import { Distribution } from "./distribution.ts";
import { Inbox } from "./inbox.ts";
import { PeerSet } from "./peers.ts";
import { MAX_QUEUE_TRACKS, queueEvent, TrackQueue } from "./queue.ts";
import { Transport } from "./transport.ts";
import { DeviceControls, type DeviceSettings, type SettingsStore } from "./device_settings.ts";
import { type HostToPeer, MAX_PEERS, MAX_PEERS_LIMIT, type TrackInfo } from "./protocol.ts";
import { measureProbes, planCalibration, verdict } from "./calibration.ts";
import { type MicSession, startMic } from "../audio/mic.ts";

export { BASE_LEAD_MS } from "./transport.ts";

/** How far ahead a calibration probe is scheduled. */
const PROBE_LEAD_MS = 1000;

/** Bind addresses that mean "every interface": peers need one of this machine's LAN addresses. */
const ANY_ADDRESS = new Set(["0.0.0.0", "::", ""]);

/**
 * The address a browser opens to join: `http://HOST:PORT/`, an IPv6 host in brackets (a zone
 * such as `%eth0` escaped as URLs require).
 */
export function joinUrlFor(host: string, port: number): string {
  const h = host.includes(":") ? `[${host.replace("%", "%25")}]` : host;
  return `http://${h}:${port}/`;
}

/** How long quitting waits for downloads in flight before it goes on without them. */
const SHUTDOWN_WAIT_MS = 1000;

/** Heartbeat period: a peer that misses five in a row (2.5 s) ends the session. */
export const HEARTBEAT_MS = 500;

/** The click test stops by itself after this long, so a forgotten one does not tick on. */
export const CLICK_TEST_MS = 60_000;

interface HostTrack {
  info: TrackInfo;
  path: string;
  rateHz: number;
  frames: number;
  cover: { mime: string; bytes: Uint8Array } | null;
}

export interface HostOptions {
  session: string;
  name: string;
  port: number;
  hostname?: string;
  audio: SinkBackend | "auto";
  wavPath?: string;
  /** Testing aid: a latency this device's output has and does not report (ms). */
  simOutputLatencyMs?: number;
  advertise?: boolean;
  /** How many peers the jam admits: 1 to {@link MAX_PEERS_LIMIT} (default {@link MAX_PEERS}). */
  maxPeers?: number;
  /** The page phones and laptops open to join (`/` on the jam server); absent: none is served. */
  peerPage?: () => Promise<PeerPageAssets>;
  /** Where accepted song requests are stored. */
  requestDir: string;
  /** Speaker settings from the command line; the rest come from `settings`. */
  device?: Partial<DeviceSettings>;
  settings?: SettingsStore;
  /** How long the click test runs before it stops by itself (default {@link CLICK_TEST_MS}). */
  clickTestMs?: number;
  /** The microphone `calibrate` records (a PulseAudio source name); absent: the default input. */
  mic?: string;
}

/** The host engine: session, queue, transport, file sharing and its own local playback. */
export class HostEngine {
  readonly #tracks = new Map<string, HostTrack>();
  readonly #queue = new TrackQueue((id) => this.#tracks.get(id)?.info.title ?? id);
  readonly #peers: PeerSet;
  readonly #transport: Transport;
  readonly #distribution: Distribution<HostTrack>;
  readonly #inbox: Inbox;
  #server: Deno.HttpServer | null = null;
  #clockUdp: ClockResponder;
  #advertiser: Advertiser | null = null;
  #output: AudioOutput;
  #device: DeviceControls;
  #volume = 1;
  #muted = false;
  #timers: ReturnType<typeof setInterval>[] = [];
  /** Files being added right now, by SHA-256. */
  readonly #adding = new Set<string>();
  /** The address peers use, known once started. */
  #address = "";
  /** The jam's click test: on for every device, or off. */
  #clicks = false;
  #clicksTimer: ReturnType<typeof setTimeout> | undefined;
  #calibrating = false;

  constructor(
    readonly opts: HostOptions,
    readonly clock: LocalClock,
    readonly emit: (e: EngineEvent) => void,
  ) {
    const max = opts.maxPeers ?? MAX_PEERS;
    if (!Number.isInteger(max) || max < 1 || max > MAX_PEERS_LIMIT) {
      throw new RangeError(
        `maxPeers must be a whole number from 1 to ${MAX_PEERS_LIMIT}, not ${max}.`,
      );
    }
    this.#clockUdp = new ClockResponder({ port: opts.port, hostname: opts.hostname, clock });
    this.#output = new AudioOutput({
      backend: opts.audio,
      wavPath: opts.wavPath,
      sim: clock.sim,
      hiddenLatencyMs: opts.simOutputLatencyMs,
    });
    this.#device = new DeviceControls(this.#output, opts.settings ?? null, emit);
    const track = (id: string) => this.#tracks.get(id);
    this.#peers = new PeerSet(
      { session: opts.session, hostName: opts.name, maxPeers: max },
      clock,
      {
        emit,
        greeting: () => [
          this.#queueMsg(),
          ...this.#transport.runningSchedule(),
          // Sent on or off: a browser that rejoins may have missed the change.
          { type: "clicks", on: this.#clicks },
        ],
        focus: () => ({ current: this.#queue.currentId, next: this.#queue.nextId }),
        message: (p, m) =>
          m.type === "trackState" ? this.#distribution.trackState(p, m) : this.#inbox.offer(p, m),
        left: (p) => {
          this.#inbox.peerLeft(p.id, p.name);
          // Whatever waited for this peer may go ahead now.
          this.#distribution.peerLeft();
        },
        countChanged: () => this.#advertiser?.announce(),
        clicks: (p, on) => this.#setClicks(on, p.name),
      },
    );
    this.#distribution = new Distribution({
      hostName: opts.name,
      peers: this.#peers,
      wanted: () => this.#queue.wanted(),
      currentId: () => this.#queue.currentId,
      track,
      output: this.#output,
      load: (t) => decodeAgain(t),
      emit,
      readyEverywhere: (id) => this.#transport.readyEverywhere(id),
      unreadable: (id, why) => this.#dropUnreadable(id, why),
    });
    this.#transport = new Transport({
      clock,
      queue: this.#queue,
      track,
      notReady: (id) => this.#distribution.notReady(id),
      slowestRttMs: () => this.#peers.slowestRttMs(),
      dispatch: (m) => this.#peers.dispatch(m),
      schedule: (s) => this.#output.schedule(s),
      emit,
      queueChanged: () => this.#queueChanged(),
    });
    this.#inbox = new Inbox(opts.requestDir, {
      send: (peerId, m) => this.#peers.sendTo(peerId, m),
      emit,
      isQueued: (sha) => this.#tracks.has(sha),
      add: (path, o) => this.add(path, o),
    });
  }

  async start(): Promise<void> {
    const app = createApp({
      ...(this.opts.peerPage ? { peerPage: this.opts.peerPage } : {}),
      trackPath: (id) => this.#tracks.get(id)?.path,
      cover: (id) => this.#tracks.get(id)?.cover ?? undefined,
      upload: (token, body) => this.#inbox.upload(token, body),
      onSocket: (ws) => this.#peers.connect(ws),
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
    this.emit(audioEvent(opened));
    this.emit({ type: "volume", level: this.#volume, muted: this.#muted });
    await this.#device.init(opened.device, this.opts.device ?? {});
    if (this.opts.advertise !== false) {
      this.#advertiser = new Advertiser({
        session: this.opts.session,
        hostName: this.opts.name,
        port: this.opts.port,
        peers: () => this.#peers.size,
        maxPeers: this.maxPeers,
      });
      this.#advertiser.start();
    }
    this.#timers.push(setInterval(() => {
      this.#peers.recolorAll();
      this.#emitHealth();
    }, 1000));
    this.#timers.push(
      setInterval(
        () => this.#peers.broadcast({ type: "heartbeat", hostMs: this.clock.now() }),
        HEARTBEAT_MS,
      ),
    );
    // The address peers can use: the bound one, or this machine's first LAN address.
    const bound = this.opts.hostname ?? "0.0.0.0";
    this.#address = ANY_ADDRESS.has(bound) ? lanAddresses()[0] ?? "127.0.0.1" : bound;
    this.emit({
      type: "session",
      role: "host",
      session: this.opts.session,
      name: this.opts.name,
      port: this.opts.port,
      host: this.#address,
      joinUrl: this.joinUrl,
      maxPeers: this.maxPeers,
    });
  }

  /** How many peers the jam admits. */
  get maxPeers(): number {
    return this.opts.maxPeers ?? MAX_PEERS;
  }

  /** The page phones and laptops open to join (`http://HOST:PORT/`); empty until started. */
  get joinUrl(): string {
    return this.#address ? joinUrlFor(this.#address, this.opts.port) : "";
  }

  /** While playing, once a second: every device's estimated sync error (the sync panel). */
  #emitHealth() {
    const status = this.#output.status;
    if (this.#transport.state.state !== "playing" || !status) return;
    this.emit({
      type: "health",
      atHostMs: this.clock.now(),
      devices: [
        // The host's clock is the reference: only its placement counts.
        { name: this.opts.name, host: true, clockErrorMs: 0, placementMs: status.stats.errorMs },
        ...this.#peers.health(),
      ],
    });
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    clearTimeout(this.#clicksTimer);
    this.#transport.close();
    this.#peers.closeAll(1001, "host quit");
    this.#advertiser?.stop();
    this.#clockUdp.stop();
    await this.#output.close();
    // Shutdown waits for responses in flight; a stalled download must not hold up quitting.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#server?.shutdown(),
      new Promise((r) => timer = setTimeout(r, SHUTDOWN_WAIT_MS)),
    ]);
    clearTimeout(timer);
  }

  // ---------- commands ----------

  async run(c: Command): Promise<void> {
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
        return this.#distribution.decide(c.cmd, c.peer);
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
      case "clicks":
        return this.#setClicks(c.on);
      case "probe":
        return this.#probe(c.peer);
      case "calibrate":
        return this.#calibrate(c.peer);
      case "status":
        return this.#status();
      case "quit":
        return;
    }
  }

  /**
   * Turns the click test on or off for the whole jam (`by`: the peer that asked). Turning it on
   * (again) starts its minute afresh; then it stops by itself.
   */
  #setClicks(on: boolean, by?: string): void {
    clearTimeout(this.#clicksTimer);
    this.#clicksTimer = undefined;
    if (on) {
      const ms = this.opts.clickTestMs ?? CLICK_TEST_MS;
      this.#clicksTimer = setTimeout(() => {
        this.#setClicks(false);
        this.emit({
          type: "notice",
          level: "info",
          message: `The click test stopped by itself after ${Math.round(ms / 1000)} s.`,
        });
      }, ms);
    }
    const changed = on !== this.#clicks;
    this.#clicks = on;
    this.#output.setClicks(on);
    this.#peers.broadcast({ type: "clicks", on });
    this.emit({ type: "clicks", on });
    if (by && changed) {
      this.emit({
        type: "notice",
        level: "info",
        message: `${by} ${on ? "started" : "stopped"} the click test.`,
      });
    }
  }

  // Transport commands. Each one also cancels an automatic start that waited for devices.

  /** Plays the current track (from where it was paused) once every device has it. */
  play(fromFrame = 0): void {
    this.#transport.play(fromFrame);
  }
  pause(): void {
    this.#transport.pause();
  }
  resume(): void {
    this.#transport.resume();
  }
  stopPlayback(): void {
    this.#transport.stop();
  }
  seek(seconds: number): void {
    this.#transport.seek(seconds);
  }
  skipTrack(): void {
    this.#transport.skipTrack();
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
    // Two adds of one file at once (a double click) must not both queue it.
    if (this.#tracks.has(id) || this.#adding.has(id)) {
      this.emit({ type: "notice", level: "info", message: `"${fileName}" is already queued.` });
      return `"${fileName}" is already in the queue.`;
    }
    this.#adding.add(id);
    try {
      let pcm;
      try {
        pcm = await decodeMp3Apart(file.bytes, { id, fileName });
      } catch (e) {
        return fail(
          e instanceof DecodeError
            ? e.message
            : `Cannot use "${fileName}": ${(e as Error).message}`,
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
        rateHz: pcm.rateHz,
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
      this.#distribution.added(pcm);
      this.emit({
        type: "track-ready",
        trackId: id,
        fileName,
        ...(opts.requestedBy ? { requestedBy: opts.requestedBy } : {}),
      });
      this.#queueChanged();
      this.#distribution.recheck(id);
      return null;
    } finally {
      this.#adding.delete(id);
    }
  }

  #remove(position: number): void {
    const id = this.#queue.ids[position - 1];
    if (id && this.#transport.holds(id)) {
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

  /** After any change of order or current track: tell everyone, decode, re-plan the transition. */
  #queueChanged() {
    this.#emitQueue(true);
    this.#distribution.keepDecoded();
    this.#transport.arm();
  }

  /** Emits the queue as an event (positions 1-based); with `broadcast`, tells peers too. */
  #emitQueue(broadcast = false) {
    const m = this.#queueMsg();
    if (broadcast) this.#peers.broadcast(m);
    this.emit(queueEvent(m.tracks, m.current));
  }
  #queueMsg(): Extract<HostToPeer, { type: "queue" }> {
    return {
      type: "queue",
      tracks: this.#queue.ids.map((id) => this.#tracks.get(id)!.info),
      current: this.#queue.current,
    };
  }

  /**
   * Calibration: the host's device, or the peer named, plays the probe a second from now (more
   * than any device's lead, a browser's ~0.35 s included).
   */
  #probe(name?: string): void {
    const atHostMs = this.clock.now() + PROBE_LEAD_MS;
    if (name === undefined) {
      this.#output.playProbe(atHostMs);
      this.emit({ type: "probe", device: this.opts.name, atHostMs });
      return;
    }
    const p = this.#peers.named(name);
    if (!p) {
      this.emit({ type: "notice", level: "error", message: `No peer is called "${name}".` });
      return;
    }
    this.#peers.send(p, { type: "probe", atHostMs });
    this.emit({ type: "probe", device: name, atHostMs });
  }

  /**
   * Calibration: the host's device and each peer (or the one named) play the probe in turn
   * while the host's microphone records; speaker delays are then set so that all of them are
   * heard together at the microphone (session/calibration.ts). One at a time; a refusal
   * changes nothing.
   */
  async #calibrate(only?: string): Promise<void> {
    const refuse = (message: string, devices?: CalibratedDevice[]) =>
      this.emit({ type: "calibration", state: "refused", message, devices });
    if (this.#calibrating) return refuse("A calibration is already running.");
    const peers = this.#peers.all().filter((p) =>
      only === undefined || p.name.toLowerCase() === only.toLowerCase()
    );
    if (only !== undefined && peers.length === 0) {
      return refuse(`No peer is called "${only}".`);
    }
    only = peers.length === 1 && only !== undefined ? peers[0].name : only;
    if (peers.length === 0) {
      return refuse(
        "Calibration needs at least one other device: it sets each device's delay against the others.",
      );
    }
    this.#calibrating = true;
    const began = performance.now();
    let mic: MicSession | null = null;
    try {
      try {
        mic = await startMic({ source: this.opts.mic ?? null });
      } catch (e) {
        return refuse(`Calibration needs the host's microphone. ${(e as Error).message}`);
      }
      const plan = planCalibration([
        { name: this.opts.name, host: true, delayMs: this.#device.settings.speakerDelayMs },
        ...peers.map((p) => ({
          name: p.name,
          host: false,
          delayMs: p.settings.speakerDelayMs,
        })),
      ], this.clock.now());
      this.emit({
        type: "calibration",
        state: "running",
        devices: plan.probes.map((p) => p.name),
        expectedMs: plan.endHostMs - this.clock.now(),
      });
      for (const p of plan.probes) {
        if (p.host) this.#output.playProbe(p.atHostMs);
        else {
          const peer = this.#peers.named(p.name);
          if (peer) this.#peers.send(peer, { type: "probe", atHostMs: p.atHostMs });
        }
      }
      await new Promise((r) => setTimeout(r, Math.max(0, plan.endHostMs - this.clock.now())));
      const rec = await mic.stop();
      mic = null;
      const clock = this.clock;
      const v = verdict(
        measureProbes({
          rateHz: rec.rateHz,
          samples: rec.samples,
          hostMsOf: (i) => clock.fromReal(rec.localMsOf(i)),
          indexAt: (h) => rec.indexAt(clock.toReal(h)),
        }, plan),
        only,
      );
      if (!v.ok) return refuse(v.message, v.devices);
      for (const d of v.devices) {
        if (d.delayMs === d.delayBeforeMs) continue;
        if (d.host) await this.#device.setDelay(d.delayMs);
        else {
          const peer = this.#peers.named(d.name);
          if (peer) this.#peers.send(peer, { type: "delay", speakerDelayMs: d.delayMs });
        }
      }
      this.emit({
        type: "calibration",
        state: "done",
        devices: v.devices,
        tookMs: Math.round(performance.now() - began),
      });
    } catch (e) {
      refuse(`Calibration failed: ${(e as Error).message}`);
    } finally {
      if (mic) await mic.stop().catch(() => {});
      this.#calibrating = false;
    }
  }

  #assign(name: string, channel: ChannelMode) {
    const p = this.#peers.named(name);
    if (p) this.#peers.send(p, { type: "assign", channel });
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
    const id = this.#queue.currentId;
    const t = id === undefined ? undefined : this.#tracks.get(id);
    this.emit({
      type: "status",
      role: "host",
      session: this.opts.session,
      transport: this.#transport.state.state,
      track: t?.info.title ?? null,
      positionSec: t ? this.#transport.frameAt(this.clock.now()) / t.rateHz : 0,
      queuePosition: this.#queue.current + 1,
      queueLength: this.#queue.ids.length,
      // Set when the queue waits for devices to get the current track.
      waitingFor: this.#transport.waitingToStart ? this.#distribution.waitingFor() : [],
      inbox: this.#inbox.list().length,
      volume: this.#volume,
      muted: this.#muted,
      ...this.#device.settings,
      clicks: this.#clicks,
      peers: this.#peers.list(),
      audio: this.#output.status,
    });
  }
}

/** Reads a queued file again (it must still be the file that was added) and decodes it. */
async function decodeAgain(t: HostTrack) {
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
  return await decodeMp3Apart(bytes, { id: t.info.id, fileName: t.info.fileName });
}

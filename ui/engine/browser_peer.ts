/// <reference lib="dom" />
/**
 * The peer engine that runs in a web page: a phone or laptop that opened the host's address.
 * It speaks the same protocol as native peers over the same WebSocket, keeps its clock with
 * pings on that socket, fetches and verifies the current and next track over HTTP, decodes them
 * in a worker with the native decoder, and plays through {@link WebOutput}. It is the page's
 * {@link UiClient}: the app's models and peer screens render its events unchanged.
 */
import { signal } from "@preact/signals";
import { clockColor } from "../../net/clock_filter.ts";
import { localToHost } from "../../net/local_clock.ts";
import type { Command, EngineEvent } from "../../session/commands.ts";
import {
  DeviceControls,
  type DeviceSettings,
  type SettingsMemory,
} from "../../session/device_settings.ts";
import {
  decodeMessage,
  encodeMessage,
  type HostToPeer,
  type PeerToHost,
  PROTOCOL_VERSION,
  type TrackInfo,
  type TrackStateName,
} from "../../session/protocol.ts";
import { PeerPlayback, SongRequests } from "../../session/peer_playback.ts";
import { queueEvent, wantedOf } from "../../session/queue.ts";
import type { UiClient } from "../client.ts";
import type { DecodeReply, DecodeRequest } from "./decode_messages.ts";
import { fetchTrack } from "./fetch_track.ts";
import { sha256Hex } from "./hash.ts";
import { TrackCache } from "./track_cache.ts";
import { WebOutput } from "./web_output.ts";
import { pageNowMs, WsClock } from "./ws_clock.ts";

/** Said when the host ends the jam or cannot be reached any more. */
export const HOST_GONE = "Host disconnected — session ended";
/**
 * Refused reconnections (the host machine answers, PhaseLock on it does not) before the host
 * counts as gone; attempts that time out are the network's fault and do not count, up to
 * {@link GIVE_UP_MS} without the host.
 */
const RECONNECT_TRIES = 4;
const GIVE_UP_MS = 60_000;
/** A connection attempt not open by then is abandoned (a stalled network holds it for minutes). */
const CONNECT_TIMEOUT_MS = 3000;
/** Silence from the host (heartbeats come every 0.5 s) that means the link is down. */
const SILENCE_MS = 2500;

const STORE_KEY = "phaselock.browser";

/** Name and speaker settings, remembered by this browser. */
class BrowserMemory implements SettingsMemory {
  read(): { name?: string; devices?: Record<string, Partial<DeviceSettings>> } {
    try {
      return JSON.parse(localStorage.getItem(STORE_KEY) ?? "{}") ?? {};
    } catch {
      return {};
    }
  }
  write(patch: Record<string, unknown>) {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({ ...this.read(), ...patch }));
    } catch { /* private mode: nothing is remembered */ }
  }
  load(device: string): Promise<Partial<DeviceSettings>> {
    return Promise.resolve(this.read().devices?.[device] ?? {});
  }
  save(device: string, s: DeviceSettings): Promise<void> {
    this.write({ devices: { ...this.read().devices, [device]: s } });
    return Promise.resolve();
  }
}

type Phase = "home" | "joining" | "joined" | "reconnecting";

export class BrowserPeer implements UiClient {
  readonly connected = signal(true);
  /** The page must be tapped before sound can play (iOS, a frozen or interrupted context). */
  readonly needsTap = signal(false);
  /** What the page is doing about the link to the host, for the banner. */
  readonly link = signal<"ok" | "offline" | "reconnecting">("ok");
  readonly #listeners = new Set<(e: EngineEvent) => void>();
  readonly #memory = new BrowserMemory();
  readonly #cache = new TrackCache();
  #phase: Phase = "home";
  #ws: WebSocket | null = null;
  #clock: WsClock | null = null;
  #output: WebOutput | null = null;
  #device: DeviceControls | null = null;
  #worker: Worker | null = null;
  #name = "";
  #lastHeardMs = 0;
  #timers: ReturnType<typeof setInterval>[] = [];
  #reconnectTries = 0;
  #lostAtMs = 0;
  #ids: string[] = [];
  #current = -1;
  readonly #tracks = new Map<string, TrackInfo>();
  /** Where each wanted track stands here. */
  readonly #state = new Map<string, { state: TrackStateName; abort?: AbortController }>();
  #volume = 1;
  #muted = false;
  readonly #requests = new SongRequests((e) => this.#emit(e));
  readonly #playback = new PeerPlayback({
    schedule: (s) => this.#output?.schedule(s),
    emit: (e) => this.#emit(e),
    track: (id) => this.#tracks.get(id),
    rateOf: (id) => this.#tracks.get(id)?.rateHz ?? 48000,
    // A page's output is re-placed by a few ms now and then (the browser's audio thread
    // stalls, its reports settle): routine and inaudible, not news. A large jump is.
    resyncNoticeMs: 100,
  });
  #state_: EngineEvent[] = [];

  constructor(readonly base = `${location.protocol}//${location.host}`) {
    addEventListener("online", () => this.#online());
    addEventListener("offline", () => this.link.value = "offline");
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.#wake();
    });
    addEventListener("pageshow", () => this.#wake());
  }

  /** Home: the remembered name, and why we are here (the host ended the jam…). */
  home(message?: string): void {
    this.#emit({
      type: "home",
      hostName: "",
      peerName: this.#memory.read().name ?? "",
      sessionName: "",
      address: location.host,
      port: Number(location.port) || 80,
      ...(message ? { message } : {}),
    });
  }

  onEvent(fn: (e: EngineEvent) => void): () => void {
    this.#listeners.add(fn);
    // A late subscriber sees where things stand.
    for (const e of this.#state_) fn(e);
    return () => this.#listeners.delete(fn);
  }

  #emit(e: EngineEvent) {
    if (e.type === "home") this.#state_ = [e];
    else if (e.type === "session") this.#state_.push(e);
    for (const fn of this.#listeners) fn(e);
  }

  hostNowMs = (): number => {
    const e = this.#clock?.filter.estimate;
    const now = pageNowMs();
    return e ? localToHost(e, now) : now;
  };

  /**
   * Joins the host that served this page as `name`. Call from the Join button's handler: the
   * audio context is created and resumed inside the gesture, which iOS and WebKit require.
   */
  join(name: string): void {
    if (this.#phase !== "home") return;
    this.#name = name;
    this.#memory.write({ name });
    this.#phase = "joining";
    if (!this.#output) {
      const out = new WebOutput(undefined, simOutputLatencyMs());
      this.#output = out;
      // iOS: play through the mute switch like a music app.
      const nav = navigator as Navigator & { audioSession?: { type: string } };
      if (nav.audioSession) nav.audioSession.type = "playback";
      out.onStateChange = () => this.needsTap.value = out.needsGesture;
      out.onEvent = (e) => this.#playback.onPlayerEvent(e);
      void out.resume().then(() => this.needsTap.value = out.needsGesture);
      this.#device = new DeviceControls(out, this.#memory, (e) => this.#emit(e));
      this.#device.onChange = (s) => this.#send({ type: "settings", ...s });
      void this.#device.init("browser", {});
    }
    this.#emit({ type: "volume", level: this.#volume, muted: this.#muted });
    this.#emit({ type: "audio", backend: "webaudio", audible: true });
    this.#connect();
  }

  /** A tap on the "Tap to start audio" overlay. */
  async tap(): Promise<void> {
    const out = this.#output;
    if (!out) return;
    if (out.status.state === "frozen") {
      // A context that says "running" but whose clock stands still: kick it.
      await out.ctx.suspend().catch(() => {});
    }
    await out.resume();
    out.wake();
    this.needsTap.value = out.needsGesture;
  }

  #connect() {
    const ws = new WebSocket(`${this.base.replace(/^http/, "ws")}/ws`);
    this.#ws = ws;
    let welcomed = false;
    const openedAt = performance.now();
    const timeout = setTimeout(() => {
      if (ws.readyState !== WebSocket.OPEN && ws === this.#ws) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(timeout);
      this.#send({
        type: "hello",
        protocolVersion: PROTOCOL_VERSION,
        name: this.#name,
        client: "browser",
        audio: { backend: "webaudio", device: true },
      });
    };
    ws.onmessage = (ev) => {
      const t4 = pageNowMs();
      if (ws !== this.#ws) return;
      let m: HostToPeer;
      try {
        m = decodeMessage(ev.data as string, "host") as HostToPeer;
      } catch (e) {
        this.#notice("warn", `Ignored a message from the host: ${(e as Error).message}.`);
        return;
      }
      this.#lastHeardMs = performance.now();
      if (m.type === "pong") return this.#clock?.pong(m.t1, m.t2, m.t3, t4);
      if (m.type === "welcome") {
        welcomed = true;
        this.#welcomed(m);
      } else if (m.type === "refused") {
        this.#end(`The host refused to let you join: ${m.reason}`);
      } else this.#onMessage(m);
    };
    ws.onclose = (ev) => {
      clearTimeout(timeout);
      if (ws !== this.#ws) return;
      if (this.#phase === "home") return;
      // Turned away at once: nobody listens at the host's address any more.
      const refused = !welcomed && performance.now() - openedAt < 1500;
      // The host ended the jam on purpose: no point in trying again.
      if (ev.code === 1001 || (!welcomed && this.#phase === "joining")) {
        return this.#end(
          this.#phase === "joining" && !welcomed
            ? `Cannot reach the PhaseLock host at ${location.host}.`
            : HOST_GONE,
        );
      }
      this.#lost(refused);
    };
  }

  #welcomed(m: Extract<HostToPeer, { type: "welcome" }>) {
    const rejoin = this.#phase === "reconnecting";
    this.#phase = "joined";
    this.#reconnectTries = 0;
    this.link.value = "ok";
    this.connected.value = true;
    this.#emit({
      type: "session",
      role: "peer",
      session: m.session,
      name: m.name,
      host: m.hostName,
      jamUrl: this.base,
    });
    if (rejoin) this.#notice("info", "Back in the jam.");
    this.#send({ type: "settings", ...this.#device!.settings });
    if (!this.#clock) {
      this.#clock = new WsClock((t1) => this.#send({ type: "ping", t1 }));
      let wasLocked = false;
      this.#clock.onUpdate = () => {
        const e = this.#clock!.filter.estimate!;
        this.#output?.setHostMap(e);
        if (e.locked && !wasLocked) {
          wasLocked = true;
          this.#reportClock();
        }
      };
    }
    this.#clock.start();
    this.#stopTimers();
    this.#timers.push(setInterval(() => this.#reportClock(), 1000));
    this.#timers.push(setInterval(() => {
      if (this.#phase === "joined" && performance.now() - this.#lastHeardMs > SILENCE_MS) {
        this.#lost();
      }
    }, 250));
  }

  /** The link dropped without the host saying goodbye: keep playing, and try to get back. */
  #lost(refused = false) {
    if (this.#phase === "home") return;
    if (this.#phase !== "reconnecting") {
      this.#lostAtMs = performance.now();
      this.#reconnectTries = 0;
    }
    const ws = this.#ws;
    this.#ws = null;
    try {
      ws?.close();
    } catch { /* closed */ }
    this.#phase = "reconnecting";
    this.connected.value = false;
    this.#stopTimers();
    this.#clock?.stop();
    if (!navigator.onLine) {
      this.link.value = "offline";
      return; // the `online` event brings us back
    }
    this.link.value = "reconnecting";
    if (refused) this.#reconnectTries++;
    if (
      this.#reconnectTries >= RECONNECT_TRIES || performance.now() - this.#lostAtMs > GIVE_UP_MS
    ) return this.#end(HOST_GONE);
    setTimeout(() => {
      if (this.#phase === "reconnecting" && !this.#ws) this.#connect();
    }, 1000);
  }

  #online() {
    if (this.#phase === "joined") this.link.value = "ok";
    if (this.#phase !== "reconnecting") return;
    this.#reconnectTries = 0;
    this.link.value = "reconnecting";
    if (!this.#ws) this.#connect();
  }

  #wake() {
    this.#output?.wake();
    if (this.#output) this.needsTap.value = this.#output.needsGesture;
    // A page frozen in the background may have missed the host going quiet.
    if (this.#phase === "joined" && performance.now() - this.#lastHeardMs > SILENCE_MS) {
      this.#lost();
    }
  }

  #reportClock() {
    const e = this.#clock?.filter.estimate;
    if (!e || this.#phase !== "joined") return;
    const m = {
      locked: e.locked,
      offsetMs: e.offsetMs,
      driftPpm: e.driftPpm,
      rttMs: e.rttMs,
      errorMs: e.errorMs,
    };
    const st = this.#output?.status;
    this.#send({
      type: "clock",
      ...m,
      placementMs: st?.playing ? st.errorMs : 0,
      bufferMs: this.#output?.bufferMs ?? 0,
    });
    this.#emit({
      type: "clock",
      ...m,
      color: clockColor(e, pageNowMs() - this.#clock!.lastSampleMs),
    });
  }

  #send(m: PeerToHost): boolean {
    const ws = this.#ws;
    if (ws?.readyState !== WebSocket.OPEN) return false;
    ws.send(encodeMessage(m));
    return true;
  }

  #notice(level: "info" | "warn" | "error", message: string) {
    this.#emit({ type: "notice", level, message });
  }

  #onMessage(m: HostToPeer) {
    const out = this.#output!;
    switch (m.type) {
      case "queue":
        this.#onQueue(m.tracks, m.current);
        this.#emit(queueEvent(m.tracks, m.current));
        return;
      case "retry":
        for (const [id, s] of this.#state) if (s.state === "failed") this.#state.delete(id);
        this.#work();
        return;
      case "play":
      case "pause":
      case "next":
        this.#playback.onSchedule(m);
        return;
      case "peers":
        this.#emit({ type: "peers", peers: m.peers });
        return;
      case "notice":
        this.#notice(m.level, m.text);
        return;
      case "assign":
        this.#notice("info", `The host set this device to play ${m.channel}.`);
        void this.#device?.setChannel(m.channel);
        return;
      case "delay":
        this.#notice(
          "info",
          `Calibration set this device's speaker delay to ${m.speakerDelayMs.toFixed(1)} ms.`,
        );
        void this.#device?.setDelay(m.speakerDelayMs);
        return;
      case "clicks":
        out.setClicks(m.on);
        this.#emit({ type: "clicks", on: m.on });
        return;
      case "probe":
        out.player.playProbe(m.atHostMs);
        return;
      case "upload":
        void this.#upload(m.requestId, m.token);
        return;
      case "requestResult":
        this.#requests.result(m);
        return;
      case "heartbeat":
      case "welcome":
      case "refused":
      case "pong":
        return;
    }
  }

  // ---------- tracks: only the current and next are kept, as PCM (a phone's memory) ----------

  #onQueue(tracks: TrackInfo[], current: number) {
    this.#ids = tracks.map((t) => t.id);
    this.#current = current;
    this.#tracks.clear();
    for (const t of tracks) this.#tracks.set(t.id, t);
    const wanted = wantedOf(this.#ids, this.#current);
    for (const [id, s] of this.#state) {
      if (wanted.includes(id)) continue;
      s.abort?.abort();
      this.#state.delete(id);
      this.#output?.dropTrack(id);
    }
    this.#work();
  }

  /** Starts whatever a wanted track needs: one download at a time, current track first. */
  #work() {
    if (this.#phase === "home") return;
    const busy = [...this.#state.values()].some((s) =>
      s.state === "downloading" || s.state === "decoding"
    );
    if (busy) return;
    const id = wantedOf(this.#ids, this.#current).find((id) => !this.#state.has(id));
    const t = id ? this.#tracks.get(id) : undefined;
    if (t) void this.#fetchAndDecode(t);
  }

  #report(t: TrackInfo, state: TrackStateName, progress: number, error?: string) {
    const extra = error ? { error } : {};
    this.#send({ type: "trackState", trackId: t.id, state, progress, ...extra });
    this.#emit({
      type: "transfer",
      trackId: t.id,
      fileName: t.fileName,
      state,
      progress,
      ...extra,
    });
  }

  async #fetchAndDecode(t: TrackInfo) {
    const abort = new AbortController();
    const entry: { state: TrackStateName; abort?: AbortController } = {
      state: "downloading",
      abort,
    };
    this.#state.set(t.id, entry);
    try {
      // Kept from an earlier visit: no download at all.
      let bytes = await this.#cache.get(t.id);
      if (this.#state.get(t.id) !== entry) return;
      if (!bytes) {
        this.#report(t, "downloading", 0);
        bytes = await fetchTrack({
          url: `${this.base}/tracks/${t.id}`,
          sha256: t.id,
          sizeBytes: t.sizeBytes,
          signal: abort.signal,
          onProgress: (f) => f < 1 && this.#report(t, "downloading", f),
          onRetry: (n, why, from) =>
            this.#notice(
              "warn",
              `Retrying "${t.fileName}" (attempt ${n + 1} of 4${
                from > 0 ? `, resuming at byte ${from}` : ""
              }): ${why}`,
            ),
        });
        // Copied (synchronously, into a Blob) before the bytes are moved to the decoder.
        void this.#cache.put(t.id, bytes);
      }
      entry.state = "decoding";
      this.#report(t, "decoding", 1);
      const pcm = await this.#decode(t, bytes, abort.signal);
      if (this.#state.get(t.id) !== entry) return; // dropped from the queue meanwhile
      this.#output!.addTrack(pcm);
      entry.state = "ready";
      entry.abort = undefined;
      this.#report(t, "ready", 1);
      this.#emit({ type: "track-ready", trackId: t.id, fileName: t.fileName });
    } catch (e) {
      if (abort.signal.aborted) return;
      entry.state = "failed";
      this.#report(t, "failed", 0, (e as Error).message.slice(0, 400));
    } finally {
      this.#work();
    }
  }

  #decode(t: TrackInfo, bytes: Uint8Array<ArrayBuffer>, signal: AbortSignal) {
    const worker = this.#worker ??= new Worker(`${this.base}/decode_worker.js`, { type: "module" });
    return new Promise<import("../../audio/player.ts").Pcm>((resolve, reject) => {
      const onMessage = (ev: MessageEvent<DecodeReply>) => {
        const m = ev.data;
        if (m.id !== t.id) return;
        if (m.type === "progress") return;
        worker.removeEventListener("message", onMessage);
        if (m.type === "done") {
          resolve({ id: t.id, rateHz: m.rateHz, left: m.left, right: m.right });
        } else reject(new Error(m.message));
      };
      worker.addEventListener("message", onMessage);
      signal.addEventListener("abort", () => {
        worker.removeEventListener("message", onMessage);
        worker.postMessage({ type: "cancel", id: t.id } satisfies DecodeRequest);
        reject(signal.reason);
      }, { once: true });
      const m: DecodeRequest = {
        type: "decode",
        id: t.id,
        fileName: t.fileName,
        bytes: bytes.buffer,
      };
      worker.postMessage(m, [bytes.buffer]);
    });
  }

  // ---------- what the screens show ----------

  // ---------- song requests ----------

  async upload(file: File, onProgress?: (f: number) => void): Promise<string | null> {
    if (this.#phase !== "joined") return "Not connected to the host.";
    const bytes = new Uint8Array(await file.arrayBuffer());
    const title = file.name.replace(/\.mp3$/i, "");
    const requestId = this.#requests.add(file.name, title, bytes);
    this.#send({
      type: "request",
      requestId,
      fileName: file.name.slice(0, 255),
      title: title.slice(0, 255),
      artist: "",
      sizeBytes: bytes.length,
      sha256: sha256Hex(bytes),
    });
    this.#requests.event(requestId, "sent");
    onProgress?.(1);
    return null;
  }

  #upload(requestId: number, token: string): Promise<void> {
    const r = this.#requests.get(requestId);
    if (!r) return Promise.resolve();
    this.#requests.event(requestId, "uploading", undefined, 0);
    // XMLHttpRequest, not fetch: only it reports upload progress.
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", `${this.base}/requests/${token}`);
      xhr.upload.onprogress = (e) =>
        e.lengthComputable &&
        this.#requests.event(requestId, "uploading", undefined, e.loaded / e.total);
      xhr.onloadend = () => resolve();
      xhr.onerror = () => {
        this.#emit({
          type: "error",
          message: `Could not send "${r.fileName}" to the host: the connection failed.`,
        });
      };
      xhr.send(new Blob([r.bytes]));
    });
  }

  // ---------- commands from the screens ----------

  send = (c: Command): void => {
    switch (c.cmd) {
      case "volume":
        this.#volume = c.level;
        break;
      case "mute":
      case "unmute":
        this.#muted = c.cmd === "mute";
        break;
      case "delay":
        void this.#device?.setDelay(c.ms);
        return;
      case "clicks":
        // The jam's click test: the host turns it on or off for every device.
        this.#send({ type: "clicks", on: c.on });
        return;
      case "channel":
        if (c.peer !== undefined) {
          this.#emit({
            type: "error",
            message: "Only the host assigns channels to other devices.",
          });
        } else void this.#device?.setChannel(c.channel);
        return;
      case "leave":
      case "quit":
        this.#send({ type: "bye" });
        this.#end();
        return;
      default:
        this.#emit({ type: "error", message: `Only the host controls "${c.cmd}".` });
        return;
    }
    this.#output?.setVolume(this.#volume, this.#muted);
    this.#emit({ type: "volume", level: this.#volume, muted: this.#muted });
  };

  /** Status for tests and the benchmark: clock, output and tracks, as plain data. */
  debug() {
    return {
      phase: this.#phase,
      clock: this.#clock?.filter.estimate ?? null,
      output: this.#output?.status ?? null,
      tracks: Object.fromEntries([...this.#state].map(([id, s]) => [id, s.state])),
      bufferMs: this.#output?.bufferMs ?? 0,
      trace: this.#output?.trace ?? [],
    };
  }

  #stopTimers() {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /** Back to the join page; the sound stops, the decoded tracks go. */
  #end(message?: string) {
    this.#phase = "home";
    this.#stopTimers();
    this.#clock?.stop();
    this.#clock = null;
    const ws = this.#ws;
    this.#ws = null;
    try {
      ws?.close();
    } catch { /* closed */ }
    for (const s of this.#state.values()) s.abort?.abort();
    this.#state.clear();
    this.#playback.reset();
    const out = this.#output;
    this.#output = null;
    this.#device = null;
    void out?.close();
    this.#worker?.terminate();
    this.#worker = null;
    this.link.value = "ok";
    this.connected.value = true;
    this.needsTap.value = false;
    this.home(message);
  }
}

/**
 * Testing aid: `?simOutputLatencyMs=MS` in the page's address (0–2000) makes this device
 * sound MS late without knowing it, as the native `--sim-output-latency-ms` does.
 */
function simOutputLatencyMs(): number {
  const ms = Number(new URLSearchParams(location.search).get("simOutputLatencyMs") ?? 0);
  return Number.isFinite(ms) && ms >= 0 && ms <= 2000 ? ms : 0;
}

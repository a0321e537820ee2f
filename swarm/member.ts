/// <reference lib="dom" />
/**
 * One member of a swarm: the engine behind the swarm page, and (with no audio) the native test
 * members. It joins the server's control channel under the hash of the swarm key, keeps its
 * clock on the server's with pings, opens a WebRTC data channel to every other member (the
 * newer member offers), trades files chunk by chunk with all of them ({@link FileExchange}),
 * takes part in electing the director ({@link Directorship}), and plays what the director says
 * at the server time it says, through the browser engine's output.
 *
 * What goes through the server: presence, signalling, pings, and small state messages
 * (director heartbeats with the transport, claims, per-member progress by file hash). File
 * names, manifests and chunks go only member to member.
 */
import { signal } from "@preact/signals";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import { type HostMap, localToHost } from "../net/local_clock.ts";
import type { PlayerEvent } from "../audio/player.ts";
import { pageNowMs, WsClock } from "../ui/engine/ws_clock.ts";
import { BrowserSwarmAudio, type SwarmAudio } from "../ui/engine/swarm_audio.ts";
import { delayProblem } from "../session/device_settings.ts";
import { Directorship, HEARTBEAT_MS, NO_TRANSPORT, positionAt } from "./director.ts";
import { type ExchangeChannel, FileExchange } from "./exchange.ts";
import {
  decodeFromServer,
  encode,
  type FromServer,
  type Have,
  type IceServer,
  MAX_SHARED_FILES,
  type MemberId,
  type SignalPayload,
  SWARM_PROTOCOL,
  type SwarmState,
  type ToServer,
  type Transport,
} from "./protocol.ts";
import type {
  SwarmActions,
  SwarmFileView,
  SwarmMemberView,
  SwarmPhase,
  SwarmView,
} from "./view.ts";

/** Sound starts this long after Play: time for every member to hear the director. */
export const PLAY_LEAD_MS = 1500;
/**
 * Each member says where it stands this often, and at once when something other than a
 * fetch's progress changes (a file complete, the clock locked, the sound started): the server
 * relays every status to every member, and progress moving every tick would make twenty
 * members fetching a file send ~200 statuses a second, relayed ~3800 times.
 */
const STATUS_MS = 1000;
const TICK_MS = 100;
/** The view is rebuilt at most this often for news from the network. */
const PUBLISH_MS = 150;
const CONNECT_TIMEOUT_MS = 4000;
/**
 * A data channel still not open this long after this member (the newer of the two) offered is
 * offered again, later each time (up to 4×). Whatever kept it closed — a connection that failed
 * on the other side only (that side closes it and waits for an offer), one stuck connecting, or
 * three quick retries spent during a crowd's join — the link is not given up for good.
 */
const RELINK_MS = 8000;
/** Without the server for this long, the page gives up and goes Home. */
const GIVE_UP_MS = 60_000;
const STORE_KEY = "phaselock.swarm";
const MAX_NOTICES = 5;

/** The swarm's id: SHA-256 of the key (with a prefix of this app's own), hex. */
export function swarmIdOf(key: string): string {
  return bytesToHex(sha256(utf8ToBytes(`phaselock swarm\n${key.trim()}`)));
}

/** What of a status is news at once: which files, which complete, locked, playing. */
function statusShape(s: SwarmState): string {
  if (s.kind !== "status") return "";
  return JSON.stringify([s.have.map((h) => [h.file, h.progress >= 1]), s.locked, s.playing]);
}

type PeerConnectionCtor = new (config: RTCConfiguration) => RTCPeerConnection;

export interface SwarmMemberOptions {
  /** The server's address, `http(s)://host:port`. */
  base: string;
  WebSocket: typeof WebSocket;
  RTCPeerConnection: PeerConnectionCtor;
  /** The device that plays; null for a member that only trades files. */
  audio: SwarmAudio | null;
  /** Testing aid: chunks this member sends are passed through it (a malicious seeder). */
  tamper?: (fileId: string, index: number, bytes: Uint8Array) => Uint8Array;
  /** Testing aid: this member uploads at most this many chunk bytes a second. */
  uplinkBytesPerSec?: number;
  log?: (line: string) => void;
  /** No screen reads the view (native test members): it is built only when asked for. */
  headless?: boolean;
}

interface Link {
  id: MemberId;
  name: string;
  pc: RTCPeerConnection | null;
  channel: RTCDataChannel | null;
  open: boolean;
  /** Candidates that came before the remote description. */
  pending: RTCIceCandidateInit[];
  remoteSet: boolean;
  status?: { have: Have[]; locked: boolean; playing: boolean };
  attempts: number;
  /** When this member last offered (page clock), or 0. */
  offeredAtMs: number;
  /** The signals for this link, handled one after another. */
  signalling: Promise<void>;
  /** Offers received from this member so far. */
  offers: number;
}

interface Notice {
  id: number;
  level: "info" | "warn" | "error";
  text: string;
}

function storage(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

function remembered(): { name?: string; speakerDelayMs?: number } {
  try {
    return JSON.parse(storage()?.getItem(STORE_KEY) ?? "{}") ?? {};
  } catch {
    return {};
  }
}

function remember(patch: Record<string, unknown>) {
  try {
    storage()?.setItem(STORE_KEY, JSON.stringify({ ...remembered(), ...patch }));
  } catch { /* private mode */ }
}

function browserDefaults(): SwarmMemberOptions {
  const base = `${location.protocol}//${location.host}`;
  const ms = Number(new URLSearchParams(location.search).get("simOutputLatencyMs") ?? 0);
  return {
    base,
    WebSocket,
    RTCPeerConnection,
    audio: new BrowserSwarmAudio(base, Number.isFinite(ms) && ms >= 0 && ms <= 2000 ? ms : 0),
  };
}

export class SwarmMember implements SwarmActions {
  readonly o: SwarmMemberOptions;
  readonly view = signal<SwarmView>(this.#blankView());
  readonly exchange: FileExchange;
  #phase: SwarmPhase = "home";
  #homeMessage: string | undefined;
  #key = "";
  #name = "";
  #me: MemberId | null = null;
  #myName = "";
  #ws: WebSocket | null = null;
  #iceServers: IceServer[] = [];
  #clock: WsClock | null = null;
  #director: Directorship | null = null;
  /** The transport as last known: survives a reconnection and a change of director. */
  #transport: Transport = NO_TRANSPORT;
  readonly #links = new Map<MemberId, Link>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #lastBeatMs = 0;
  #lastStatusMs = 0;
  #lastStatusKey = "";
  #applied = "";
  #pendingPlay = false;
  #lostAtMs = 0;
  readonly #loading = new Set<string>();
  readonly #durations = new Map<string, number>();
  #notices: Notice[] = [];
  #noticeId = 0;
  #delayMs = 0;
  #clicks = false;
  #volume = 1;
  #muted = false;
  #publishQueued = false;
  /** When this member joined (page clock), and when its clock first locked: for the benchmark. */
  readonly marks: Record<string, number> = {};

  constructor(options: Partial<SwarmMemberOptions> = {}) {
    this.o = { ...(options.base ? {} as SwarmMemberOptions : browserDefaults()), ...options };
    this.exchange = new FileExchange({
      onChange: () => this.#publishSoon(),
      onComplete: (id) => this.#completed(id),
      log: (m) => this.o.log?.(m),
      ...(this.o.tamper ? { tamper: this.o.tamper } : {}),
      ...(this.o.uplinkBytesPerSec ? { uplinkBytesPerSec: this.o.uplinkBytesPerSec } : {}),
    });
    const audio = this.o.audio;
    if (audio) {
      audio.onEvent = (e) => this.#playerEvent(e);
      audio.onStateChange = () => this.#publishSoon();
    }
    this.#delayMs = remembered().speakerDelayMs ?? 0;
    if (typeof document !== "undefined") {
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") this.#wake();
      });
      addEventListener("pageshow", () => this.#wake());
      addEventListener("online", () => this.#wake());
    }
  }

  /** The server's clock now (ms), as well as this member can estimate it. */
  hostNowMs = (): number => {
    const e = this.#clock?.filter.estimate;
    return e ? localToHost(e, pageNowMs()) : pageNowMs();
  };

  // ---------------------------------------------------------------- joining

  join(key: string, name: string): void {
    if (this.#phase !== "home") return;
    this.#key = key.trim();
    this.#name = name.trim().slice(0, 40);
    if (!this.#key || !this.#name) return;
    remember({ name: this.#name });
    this.#phase = "joining";
    this.#homeMessage = undefined;
    this.marks.joinMs = pageNowMs();
    const audio = this.o.audio;
    if (audio) {
      audio.start();
      audio.setDelay(this.#delayMs);
      audio.setVolume(this.#volume, this.#muted);
    }
    this.#connect();
    this.#publish();
  }

  #connect() {
    const url = `${this.o.base.replace(/^http/, "ws")}/swarm`;
    let ws: WebSocket;
    try {
      ws = new this.o.WebSocket(url);
    } catch (e) {
      return this.#end(`Cannot reach the swarm server: ${(e as Error).message}`);
    }
    this.#ws = ws;
    let welcomed = false;
    const timeout = setTimeout(() => {
      if (ws === this.#ws && ws.readyState !== WebSocket.OPEN) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(timeout);
      this.#send({
        type: "join",
        protocol: SWARM_PROTOCOL,
        swarm: swarmIdOf(this.#key),
        name: this.#name,
      });
    };
    ws.onmessage = (ev) => {
      const t4 = pageNowMs();
      if (ws !== this.#ws) return;
      let m: FromServer;
      try {
        m = decodeFromServer(ev.data);
      } catch (e) {
        this.o.log?.(`ignored a message from the server: ${(e as Error).message}`);
        return;
      }
      if (m.type === "pong") return this.#clock?.pong(m.t1, m.t2, m.t3, t4);
      if (m.type === "welcome") welcomed = true;
      this.#onServer(m);
    };
    ws.onclose = () => {
      clearTimeout(timeout);
      if (ws !== this.#ws || this.#phase === "home") return;
      if (!welcomed && this.#phase === "joining") {
        return this.#end(`Cannot reach the swarm server at ${this.o.base}.`);
      }
      this.#lost();
    };
  }

  #onServer(m: FromServer) {
    const now = this.hostNowMs();
    switch (m.type) {
      case "welcome":
        return this.#welcomed(m);
      case "refused":
        return this.#end(m.reason);
      case "error":
        this.o.log?.(`the server refused a message: ${m.message}`);
        return;
      case "joined":
        this.#director?.joined(m.member.id);
        this.#link(m.member.id, m.member.name, false);
        this.#notice("info", `${m.member.name} joined.`);
        this.#lastStatusKey = ""; // tell the newcomer where I stand
        break;
      case "left": {
        const l = this.#links.get(m.id);
        this.#director?.left(m.id, now);
        this.#unlink(m.id);
        if (l) this.#notice("info", `${l.name} left.`);
        break;
      }
      case "signal":
        void this.#onSignal(m.from, m);
        return;
      case "state":
        this.#onState(m.from, m.state);
        break;
    }
    this.#publishSoon();
  }

  #welcomed(m: Extract<FromServer, { type: "welcome" }>) {
    const rejoin = this.#phase === "reconnecting";
    this.#phase = "joined";
    this.#me = m.you;
    this.#iceServers = m.iceServers;
    this.#myName = this.#name;
    this.marks.welcomeMs = pageNowMs();
    const d = new Directorship(m.you, this.hostNowMs());
    d.present(m.members.map((x) => x.id));
    d.transport = this.#transport;
    this.#director = d;
    for (const x of m.members) this.#link(x.id, x.name, true);
    if (rejoin) this.#notice("info", "Back in the swarm.");
    if (!this.#clock) {
      this.#clock = new WsClock((t1) => this.#send({ type: "ping", t1 }));
      this.#clock.onUpdate = () => {
        const e = this.#clock!.filter.estimate!;
        this.o.audio?.setClock(e as HostMap);
        if (e.locked && this.marks.lockedMs === undefined) {
          this.marks.lockedMs = pageNowMs();
          this.#publishSoon();
        }
      };
    }
    this.#clock.start();
    this.#stopTimers();
    this.#timers.push(setInterval(() => this.#tick(), TICK_MS));
    this.#publish();
  }

  #lost() {
    if (this.#phase === "home") return;
    if (this.#phase !== "reconnecting") this.#lostAtMs = performance.now();
    const ws = this.#ws;
    this.#ws = null;
    try {
      ws?.close();
    } catch { /* closed */ }
    this.#phase = "reconnecting";
    this.#clock?.stop();
    this.#stopTimers();
    // The mesh is rebuilt under the new id; the music goes on meanwhile.
    for (const id of [...this.#links.keys()]) this.#unlink(id);
    this.#director = null;
    this.#publish();
    if (performance.now() - this.#lostAtMs > GIVE_UP_MS) {
      return this.#end("Lost the swarm server — left the swarm.");
    }
    setTimeout(() => {
      if (this.#phase === "reconnecting" && !this.#ws) this.#connect();
    }, 1000);
  }

  #wake() {
    this.o.audio?.wake();
    if (this.#phase === "reconnecting" && !this.#ws) this.#connect();
    this.#publishSoon();
  }

  leave(): void {
    if (this.#phase === "home") return;
    this.#send({ type: "bye" });
    this.#end();
  }

  #end(message?: string) {
    this.#phase = "home";
    this.#homeMessage = message;
    this.#stopTimers();
    this.#clock?.stop();
    this.#clock = null;
    const ws = this.#ws;
    this.#ws = null;
    try {
      ws?.close();
    } catch { /* closed */ }
    for (const id of [...this.#links.keys()]) this.#unlink(id);
    this.#director = null;
    this.#me = null;
    this.#transport = NO_TRANSPORT;
    this.#applied = "";
    this.#pendingPlay = false;
    this.o.audio?.schedule({ kind: "silence", atHostMs: this.hostNowMs() });
    this.#publish();
  }

  #send(m: ToServer): boolean {
    const ws = this.#ws;
    if (ws?.readyState !== WebSocket.OPEN) return false;
    ws.send(encode(m));
    return true;
  }

  #stopTimers() {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  // ---------------------------------------------------------------- the mesh

  #link(id: MemberId, name: string, offer: boolean): Link {
    let l = this.#links.get(id);
    if (!l) {
      l = {
        id,
        name,
        pc: null,
        channel: null,
        open: false,
        pending: [],
        remoteSet: false,
        attempts: 0,
        offeredAtMs: 0,
        signalling: Promise.resolve(),
        offers: 0,
      };
      this.#links.set(id, l);
    }
    l.name = name || l.name;
    if (offer && !l.pc) void this.#offer(l);
    return l;
  }

  #newPc(l: Link): RTCPeerConnection {
    const pc = new this.o.RTCPeerConnection({ iceServers: this.#iceServers });
    l.pc = pc;
    l.remoteSet = false;
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      if (!c || !c.candidate || l.pc !== pc) return;
      this.#send({
        type: "signal",
        to: l.id,
        candidate: {
          // node-datachannel writes SDP's "a=" before it; browsers do not.
          candidate: c.candidate.replace(/^a=/, ""),
          sdpMid: c.sdpMid,
          sdpMLineIndex: c.sdpMLineIndex,
        },
      });
    };
    pc.onconnectionstatechange = () => {
      if (l.pc !== pc || pc.connectionState !== "failed") return;
      this.o.log?.(`the connection to member ${l.id} failed`);
      this.#closeLink(l);
      // The newer member offers again, a few times.
      if (this.#me !== null && this.#me > l.id && l.attempts < 3 && this.#links.get(l.id) === l) {
        setTimeout(() => this.#links.get(l.id) === l && !l.pc && void this.#offer(l), 1000);
      }
    };
    pc.ondatachannel = (ev) => this.#channel(l, ev.channel);
    return pc;
  }

  async #offer(l: Link) {
    l.attempts++;
    l.offeredAtMs = performance.now();
    const pc = this.#newPc(l);
    this.#channel(l, pc.createDataChannel("files", { ordered: true }));
    try {
      await pc.setLocalDescription(await pc.createOffer());
      const d = pc.localDescription!;
      this.#send({ type: "signal", to: l.id, description: { type: "offer", sdp: d.sdp } });
    } catch (e) {
      this.o.log?.(`could not offer a connection to member ${l.id}: ${(e as Error).message}`);
    }
  }

  /**
   * Signals for one link are handled one at a time, in order: an offer's remote description
   * must be set before its candidates, and an answer must come from the connection it answers.
   */
  #onSignal(from: MemberId, s: SignalPayload) {
    const l = this.#links.get(from) ?? this.#link(from, "", false);
    const offer = s.description?.type === "offer" ? ++l.offers : 0;
    l.signalling = l.signalling.then(() => this.#signal(l, s, offer)).catch((e) =>
      this.o.log?.(`a signal from member ${from} was dropped: ${(e as Error).message}`)
    );
  }

  /** `offer`: which offer from this member this is (1, 2, …), or 0 for other signals. */
  async #signal(l: Link, s: SignalPayload, offer: number) {
    // An offer already replaced by a newer one from the same member is not answered at all.
    const stale = () => this.#links.get(l.id) !== l || (offer > 0 && offer !== l.offers);
    if (stale()) return;
    if (s.candidate) {
      if (l.pc && l.remoteSet) await this.#addCandidate(l, l.pc, s.candidate);
      else if (l.pending.length < 64) l.pending.push(s.candidate);
      return;
    }
    if (!s.description) return;
    // A new offer replaces whatever was there (the other side retried).
    if (s.description.type === "offer") {
      if (l.pc) this.#closeLink(l);
      this.#newPc(l);
    }
    const pc = l.pc;
    if (!pc) return;
    // This link may be offered again (here or by the other side) while a step is pending:
    // then this connection is no longer the link's, and the rest is left to the new one.
    const current = () => l.pc === pc && !stale();
    try {
      await pc.setRemoteDescription(s.description);
      if (!current()) return;
      l.remoteSet = true;
      for (const c of l.pending.splice(0)) await this.#addCandidate(l, pc, c);
      if (s.description.type !== "offer") return;
      await pc.setLocalDescription(await pc.createAnswer());
      if (!current()) return;
      const d = pc.localDescription!;
      this.#send({ type: "signal", to: l.id, description: { type: "answer", sdp: d.sdp } });
    } catch (e) {
      if (!current()) return;
      this.o.log?.(`signalling with member ${l.id} failed: ${(e as Error).message}`);
      // A connection that cannot be set up is dropped; the newer member offers again at once
      // (a few times, then the slower relink takes over).
      this.#closeLink(l);
      if (this.#me !== null && this.#me > l.id && l.attempts < 3) void this.#offer(l);
    }
  }

  /** A candidate the connection cannot use is only logged: the others may still connect. */
  #addCandidate(l: Link, pc: RTCPeerConnection, c: RTCIceCandidateInit) {
    return pc.addIceCandidate(c).catch((e) =>
      this.o.log?.(`a candidate from member ${l.id} was refused: ${(e as Error).message}`)
    );
  }

  #channel(l: Link, ch: RTCDataChannel) {
    l.channel = ch;
    ch.binaryType = "arraybuffer";
    ch.bufferedAmountLowThreshold = 512 * 1024;
    const port: ExchangeChannel = {
      send: (d) => ch.send(d as string),
      get bufferedAmount() {
        return ch.bufferedAmount;
      },
    };
    ch.onopen = () => {
      if (l.channel !== ch) return;
      l.open = true;
      l.attempts = 0;
      this.exchange.addPeer(l.id, port);
      this.#publishSoon();
    };
    ch.onmessage = (ev) => {
      if (l.channel === ch) this.exchange.receive(l.id, ev.data);
    };
    ch.onbufferedamountlow = () => this.exchange.pump();
    ch.onclose = () => {
      if (l.channel !== ch) return;
      l.open = false;
      this.exchange.removePeer(l.id);
      this.#publishSoon();
    };
  }

  /** Offers again on links that did not open in time (see {@link RELINK_MS}). */
  #relink() {
    const me = this.#me;
    if (me === null) return;
    const now = performance.now();
    for (const l of this.#links.values()) {
      if (l.open || me < l.id || l.offeredAtMs === 0) continue;
      if (now - l.offeredAtMs < RELINK_MS * Math.min(Math.max(l.attempts, 1), 4)) continue;
      this.o.log?.(`the link to member ${l.id} did not open: offering again`);
      this.#closeLink(l);
      void this.#offer(l);
    }
  }

  #closeLink(l: Link) {
    if (l.open) this.exchange.removePeer(l.id);
    l.open = false;
    const { pc, channel } = l;
    l.pc = null;
    l.channel = null;
    l.pending = [];
    l.remoteSet = false;
    try {
      channel?.close();
    } catch { /* closed */ }
    try {
      pc?.close();
    } catch { /* closed */ }
  }

  #unlink(id: MemberId) {
    const l = this.#links.get(id);
    if (!l) return;
    this.#closeLink(l);
    this.#links.delete(id);
  }

  // ---------------------------------------------------------------- state and the director

  #onState(from: MemberId, s: SwarmState) {
    const d = this.#director;
    if (!d) return;
    if (s.kind === "status") {
      const l = this.#links.get(from);
      if (l) l.status = { have: s.have, locked: s.locked, playing: s.playing };
      if (this.#pendingPlay) this.#checkPending();
      return;
    }
    const was = d.director;
    if (d.onState(from, s, this.hostNowMs())) {
      this.#transport = d.transport;
      if (was !== d.director) this.#announceDirector();
      this.#apply();
    }
  }

  #announceDirector() {
    const d = this.#director!;
    if (d.director === null) return;
    if (d.iDirect) this.#notice("info", "You direct the swarm now.");
    else this.#notice("info", `${this.#nameOf(d.director)} directs the swarm now.`);
    if (!d.iDirect) this.#pendingPlay = false;
  }

  #nameOf(id: MemberId): string {
    return id === this.#me ? this.#myName : this.#links.get(id)?.name || `Member ${id}`;
  }

  #tick() {
    const d = this.#director;
    if (!d || this.#phase !== "joined") return;
    const now = this.hostNowMs();
    const was = d.director;
    const claim = d.tick(now);
    if (claim) {
      this.#sendState(claim);
      this.#heartbeat();
    }
    if (was !== d.director) {
      this.#announceDirector();
      this.#publishSoon();
    }
    if (d.iDirect && now - this.#lastBeatMs >= HEARTBEAT_MS) this.#heartbeat();
    if (d.iDirect && this.#pendingPlay) this.#checkPending();
    const status = this.#status();
    const key = statusShape(status);
    if (key !== this.#lastStatusKey || now - this.#lastStatusMs >= STATUS_MS) {
      this.#lastStatusKey = key;
      this.#lastStatusMs = now;
      this.#sendState(status);
    }
    this.#relink();
    this.#apply();
  }

  #status(): SwarmState {
    const st = this.o.audio?.status() as { playing?: unknown } | null | undefined;
    return {
      kind: "status",
      have: this.exchange.have().slice(0, 60),
      locked: this.#clock?.filter.estimate?.locked ?? false,
      playing: Boolean(st?.playing),
    };
  }

  #sendState(state: SwarmState) {
    this.#send({ type: "state", state });
  }

  #heartbeat() {
    const hb = this.#director?.heartbeat();
    if (!hb) return;
    this.#lastBeatMs = this.hostNowMs();
    this.#sendState(hb);
  }

  #setTransport(t: Transport) {
    const d = this.#director;
    if (!d?.iDirect) return;
    d.setTransport(t);
    this.#transport = t;
    this.#heartbeat();
    this.#apply();
    this.#publish();
  }

  /** Members (me included) that lack the file, with their progress. */
  #waitingFor(file: string): { id: MemberId; name: string; progress: number }[] {
    const out: { id: MemberId; name: string; progress: number }[] = [];
    const mine = this.exchange.progress(file);
    if (mine < 1 && this.#me !== null) {
      out.push({ id: this.#me, name: this.#myName, progress: mine });
    }
    for (const l of this.#links.values()) {
      const p = l.status?.have.find((h) => h.file === file)?.progress ?? 0;
      if (p < 1) out.push({ id: l.id, name: l.name, progress: p });
    }
    return out;
  }

  #checkPending() {
    const file = this.#transport.file;
    if (!this.#pendingPlay || !file || !this.#director?.iDirect) return;
    if (this.#waitingFor(file).length === 0) this.#start();
  }

  #start() {
    const file = this.#transport.file;
    if (!file) return;
    this.#pendingPlay = false;
    this.#setTransport({ file, playing: true, atMs: this.hostNowMs() + PLAY_LEAD_MS, fromSec: 0 });
  }

  /** Plays what the transport says, once this device has the file decoded. */
  #apply() {
    const t = this.#transport;
    const audio = this.o.audio;
    if (t.file) this.exchange.want(t.file);
    if (!audio) return;
    const key = JSON.stringify(t);
    if (key === this.#applied) return;
    if (t.playing && t.file) {
      if (!audio.has(t.file)) return; // once loaded, this runs again
      const rate = audio.rateOf(t.file);
      audio.schedule({
        kind: "play",
        atHostMs: t.atMs,
        trackId: t.file,
        fromFrame: Math.round(t.fromSec * rate),
      });
    } else {
      audio.schedule({ kind: "silence", atHostMs: Math.max(t.atMs, this.hostNowMs()) });
    }
    this.#applied = key;
  }

  async #completed(fileId: string) {
    const audio = this.o.audio;
    this.#publishSoon();
    if (!audio || this.#loading.has(fileId) || audio.has(fileId)) return;
    const bytes = this.exchange.bytes(fileId);
    const name = this.exchange.files().find((f) => f.id === fileId)?.name ?? "file";
    if (!bytes) return;
    this.#loading.add(fileId);
    try {
      const { durationSec } = await audio.load(fileId, name, bytes);
      this.#durations.set(fileId, durationSec);
      this.#apply();
    } catch (e) {
      this.#notice("error", (e as Error).message);
    } finally {
      this.#loading.delete(fileId);
      this.#publishSoon();
    }
  }

  #playerEvent(e: PlayerEvent) {
    if (e.type === "resync" && Math.abs(e.errorMs) > 100) {
      this.#notice("warn", `Re-placed the music by ${e.errorMs.toFixed(0)} ms to stay in sync.`);
    }
    this.#publishSoon();
  }

  // ---------------------------------------------------------------- actions

  async share(file: File): Promise<string | null> {
    if (this.#phase === "home") return "Join a swarm first.";
    const mine = this.exchange.files().filter((f) => f.mine).length;
    if (mine >= MAX_SHARED_FILES) {
      return `You share ${MAX_SHARED_FILES} files already (the most).`;
    }
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const id = this.exchange.share(file.name, bytes);
      void this.#completed(id);
      this.#publish();
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** Shares bytes directly (native members, tests). */
  shareBytes(name: string, bytes: Uint8Array): string {
    const id = this.exchange.share(name, bytes);
    void this.#completed(id);
    this.#publishSoon();
    return id;
  }

  setEnabled(fileId: string, on: boolean): void {
    this.exchange.setEnabled(fileId, on);
    this.#publish();
  }

  select(fileId: string): void {
    if (!this.#director?.iDirect) return this.#notice("warn", "Only the director picks the file.");
    this.#pendingPlay = false;
    this.#setTransport({ file: fileId, playing: false, atMs: this.hostNowMs(), fromSec: 0 });
  }

  play(): void {
    if (!this.#director?.iDirect) {
      return this.#notice("warn", "Only the director starts the music.");
    }
    if (!this.#transport.file) return this.#notice("warn", "Select a file to play first.");
    this.#pendingPlay = true;
    this.#checkPending();
    this.#publish();
  }

  startNow(): void {
    if (!this.#director?.iDirect) return;
    this.#start();
  }

  stop(): void {
    if (!this.#director?.iDirect) return this.#notice("warn", "Only the director stops the music.");
    this.#pendingPlay = false;
    const t = this.#transport;
    const now = this.hostNowMs();
    this.#setTransport({ file: t.file, playing: false, atMs: now, fromSec: 0 });
  }

  takeControl(): void {
    const d = this.#director;
    if (!d || d.iDirect) return;
    this.#sendState(d.takeControl(this.hostNowMs()));
    this.#heartbeat();
    this.#notice("info", "You direct the swarm now.");
    this.#publish();
  }

  resign(): void {
    const d = this.#director;
    const m = d?.resign(this.hostNowMs());
    if (!m) return;
    this.#pendingPlay = false;
    this.#sendState(m);
    this.#notice("info", "You resigned; the next member directs.");
    this.#publish();
  }

  setDelay(ms: number): void {
    const bad = delayProblem(ms);
    if (bad) return this.#notice("error", bad);
    this.#delayMs = ms;
    remember({ speakerDelayMs: ms });
    this.o.audio?.setDelay(ms);
    this.#publish();
  }

  setClicks(on: boolean): void {
    this.#clicks = on;
    this.o.audio?.setClicks(on);
    this.#publish();
  }

  setVolume(level: number, muted: boolean): void {
    this.#volume = Math.max(0, Math.min(1, level));
    this.#muted = muted;
    this.o.audio?.setVolume(this.#volume, muted);
    this.#publish();
  }

  tap(): void {
    void this.o.audio?.tap().then(() => this.#publish());
  }

  dismiss(noticeId: number): void {
    this.#notices = this.#notices.filter((n) => n.id !== noticeId);
    this.#publish();
  }

  #notice(level: Notice["level"], text: string) {
    this.#notices = [...this.#notices, { id: ++this.#noticeId, level, text }].slice(-MAX_NOTICES);
    this.o.log?.(`${level}: ${text}`);
    this.#publishSoon();
  }

  // ---------------------------------------------------------------- the view

  /**
   * Publishes the view within {@link PUBLISH_MS}: in a swarm of twenty, other members' statuses
   * alone arrive ~20 times a second, and re-rendering the screen for each cost a page the CPU
   * its audio placement needs. The person's own actions publish at once ({@link #publish}).
   */
  #publishSoon() {
    if (this.#publishQueued) return;
    this.#publishQueued = true;
    setTimeout(() => {
      this.#publishQueued = false;
      this.#publish();
    }, PUBLISH_MS);
  }

  #publish() {
    if (this.o.headless) return;
    this.view.value = this.#buildView();
  }

  #blankView(): SwarmView {
    return {
      phase: "home",
      swarmName: "",
      savedName: remembered().name ?? "",
      me: null,
      link: "ok",
      clock: null,
      members: [],
      director: null,
      iAmDirector: false,
      files: [],
      transport: { file: null, playing: false, positionSec: 0, durationSec: null },
      status: "",
      waitingFor: [],
      speakerDelayMs: 0,
      clicks: false,
      volume: 1,
      muted: false,
      needsTap: false,
      notices: [],
    };
  }

  #buildView(): SwarmView {
    const d = this.#director;
    const t = this.#transport;
    const e = this.#clock?.filter.estimate ?? null;
    const audio = this.o.audio;
    const files: SwarmFileView[] = this.exchange.files().map((f) => ({
      ...f,
      playable: audio?.has(f.id) ?? false,
      ...(this.#durations.has(f.id) ? { durationSec: this.#durations.get(f.id) } : {}),
    }));
    const progressOf = (have: Have[] | undefined) =>
      t.file ? have?.find((h) => h.file === t.file)?.progress : undefined;
    const members: SwarmMemberView[] = [];
    if (this.#me !== null) {
      members.push({
        id: this.#me,
        name: this.#myName,
        me: true,
        director: d?.director === this.#me,
        linked: true,
        locked: e?.locked ?? false,
        ...(t.file ? { progress: this.exchange.progress(t.file) } : {}),
      });
    }
    for (const l of this.#links.values()) {
      const p = progressOf(l.status?.have);
      members.push({
        id: l.id,
        name: l.name || `Member ${l.id}`,
        me: false,
        director: d?.director === l.id,
        linked: l.open,
        locked: l.status?.locked ?? false,
        ...(p !== undefined ? { progress: p } : {}),
      });
    }
    members.sort((a, b) => a.id - b.id);
    const iDirect = d?.iDirect ?? false;
    return {
      phase: this.#phase,
      ...(this.#homeMessage ? { homeMessage: this.#homeMessage } : {}),
      swarmName: this.#key,
      savedName: this.#name || remembered().name || "",
      me: this.#me !== null ? { id: this.#me, name: this.#myName } : null,
      link: this.#phase === "reconnecting" ? "reconnecting" : "ok",
      clock: e ? { locked: e.locked, rttMs: e.rttMs, errorMs: e.errorMs } : null,
      members,
      director: d?.director ?? null,
      iAmDirector: iDirect,
      files,
      transport: {
        file: t.file,
        playing: t.playing,
        positionSec: positionAt(t, this.hostNowMs()),
        durationSec: t.file ? this.#durations.get(t.file) ?? null : null,
      },
      status: this.#statusLine(),
      waitingFor: iDirect && this.#pendingPlay && t.file ? this.#waitingFor(t.file) : [],
      speakerDelayMs: this.#delayMs,
      clicks: this.#clicks,
      volume: this.#volume,
      muted: this.#muted,
      needsTap: audio?.needsTap ?? false,
      notices: this.#notices,
    };
  }

  #statusLine(): string {
    if (this.#phase === "home") return "";
    if (this.#phase === "joining") return "Joining…";
    if (this.#phase === "reconnecting") return "Reconnecting to the swarm server…";
    if (!this.#clock?.filter.estimate?.locked) return "Syncing clock…";
    const d = this.#director;
    if (!d || d.director === null) return "Waiting for director";
    const t = this.#transport;
    if (!t.file) {
      return d.iDirect ? "Select a file to play" : "Waiting for the director to pick a file";
    }
    const f = this.exchange.files().find((x) => x.id === t.file);
    if (!f) return "Missing file";
    if (f.progress < 1) {
      return f.enabled ? `Fetching ${Math.floor(f.progress * 100)} %` : "Missing file";
    }
    if (this.o.audio && !this.o.audio.has(t.file)) return "Preparing…";
    if (d.iDirect && this.#pendingPlay) return "Waiting for members to fetch the file";
    return t.playing ? "Playing" : "Ready";
  }

  /** Where this member stands, as plain data (tests, the benchmark). */
  debug() {
    return {
      phase: this.#phase,
      me: this.#me,
      director: this.#director?.director ?? null,
      term: this.#director?.term ?? 0,
      transport: this.#transport,
      clock: this.#clock?.filter.estimate ?? null,
      output: this.o.audio?.status() ?? null,
      files: this.exchange.files(),
      stats: this.exchange.stats,
      links: [...this.#links.values()].map((l) => ({ id: l.id, open: l.open })),
      marks: this.marks,
    };
  }
}

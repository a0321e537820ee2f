/**
 * The host's peers: who may join (protocol version, room, a usable name), each peer's clock
 * status and output settings, the peer list everyone sees, and sending to peers — to one, to
 * all, or staggered so that a schedule reaches near and far devices at about the same moment.
 * No runtime I/O: sockets come in as {@link SocketLike}, time as a clock, so it is tested with
 * fake sockets.
 */
import { clockColor } from "../net/clock_filter.ts";
import type { SocketHandler, SocketLike } from "../server/http.ts";
import type { DeviceHealth, EngineEvent } from "./commands.ts";
import { DEFAULT_SETTINGS, type DeviceSettings } from "./device_settings.ts";
import { cleanName, dedupeName } from "./names.ts";
import {
  type ClockColor,
  type ClockReportMsg,
  decodeMessage,
  encodeMessage,
  type HelloMsg,
  type HostToPeer,
  MAX_PEERS,
  type PeerInfo,
  type PeerToHost,
  PROTOCOL_VERSION,
  ProtocolError,
  type RequestMsg,
  type TrackStateMsg,
  type TrackStateName,
} from "./protocol.ts";

/**
 * Round trip assumed for a peer that has not reported its clock yet: a schedule sent before
 * its first report must still arrive in time on a typical LAN or nearby WAN.
 */
export const UNKNOWN_RTT_MS = 50;

/** What the host knows about one track on one peer, from its `trackState` reports. */
export interface PeerTrackState {
  state: TrackStateName;
  /** Download progress 0..1 (1 once cached, decoding or ready). */
  progress: number;
  error?: string;
}

/** An admitted peer. */
export interface Peer {
  readonly id: number;
  readonly name: string;
  readonly ws: SocketLike;
  readonly audio: { backend: string; device: boolean };
  readonly client: "native" | "browser";
  /** The peer's last clock report, null until the first. */
  clock: Omit<ClockReportMsg, "type"> | null;
  /** Host time of the last clock report (or of admission). */
  clockAtMs: number;
  readonly tracks: Map<string, PeerTrackState>;
  color: ClockColor;
  settings: DeviceSettings;
  /** Tracks the host was told to play without this peer (`skip-peer`). */
  readonly skipped: Set<string>;
}

/** Messages from an admitted peer that are about tracks or requests, not about the peer. */
export type PeerTrackMessage = TrackStateMsg | RequestMsg;

/** What the peer list needs from the rest of the host. */
export interface PeersHooks {
  emit(e: EngineEvent): void;
  /** What a newcomer is sent right after `welcome`: the queue, then the running schedule. */
  greeting(): HostToPeer[];
  /** The current and next track ids, for each peer's state of them in the list. */
  focus(): { current?: string; next?: string };
  /** A `trackState` or `request` from an admitted peer. */
  message(p: Peer, m: PeerTrackMessage): void;
  /** A peer has left (the others were told): whatever waited for it may go ahead. */
  left(p: Peer): void;
  /** A peer asks to turn the jam's click test on or off. */
  clicks?(p: Peer, on: boolean): void;
  /** The number of peers changed (mDNS advertises it). */
  countChanged?(): void;
  /** Timer for staggered sends; tests pass a fake one. */
  setTimeout?(fn: () => void, ms: number): unknown;
}

/** The host's admitted peers. */
export class PeerSet {
  readonly #peers = new Map<number, Peer>();
  #nextId = 1;
  readonly #setTimeout: (fn: () => void, ms: number) => unknown;

  constructor(
    readonly opts: { session: string; hostName: string; maxPeers?: number },
    readonly clock: { now(): number },
    readonly hooks: PeersHooks,
  ) {
    this.#setTimeout = hooks.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
  }

  get size(): number {
    return this.#peers.size;
  }
  values(): IterableIterator<Peer> {
    return this.#peers.values();
  }

  /**
   * Handles one control connection: the first message must be a valid `hello`, which admits
   * the peer or refuses it with a sentence; later messages are routed. `admitted()` tells the
   * server whether the connection is still waiting to become a peer.
   */
  connect(ws: SocketLike): SocketHandler {
    let peer: Peer | null = null;
    return {
      admitted: () => peer !== null,
      onMessage: (data) => {
        let m: PeerToHost;
        try {
          m = decodeMessage(data, "peer") as PeerToHost;
        } catch (e) {
          const why = e instanceof ProtocolError ? e.message : "unreadable message";
          this.hooks.emit({
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
        this.#onMessage(peer, m);
      },
      onClose: () => {
        if (!peer) return;
        const p = peer;
        peer = null;
        this.#peers.delete(p.id);
        this.hooks.emit({ type: "peer-left", id: p.id, name: p.name, reason: "disconnected" });
        this.hooks.countChanged?.();
        this.listChanged();
        this.hooks.left(p);
      },
    };
  }

  #admit(ws: SocketLike, m: HelloMsg): Peer | null {
    const refuse = (reason: string) => {
      ws.send(encodeMessage({ type: "refused", reason }));
      ws.close(1000, "refused");
      this.hooks.emit({ type: "peer-refused", name: cleanName(m.name), reason });
      return null;
    };
    if (m.protocolVersion !== PROTOCOL_VERSION) {
      return refuse(
        `This jam speaks protocol version ${PROTOCOL_VERSION}; your PhaseLock speaks ${m.protocolVersion}. Update PhaseLock to join.`,
      );
    }
    const max = this.opts.maxPeers ?? MAX_PEERS;
    if (this.#peers.size >= max) {
      return refuse(`"${this.opts.session}" is full: it already has ${max} of ${max} peers.`);
    }
    const wanted = cleanName(m.name);
    if (!wanted) return refuse("Please choose a display name with at least one visible character.");
    const name = dedupeName(wanted, [
      this.opts.hostName,
      ...[...this.#peers.values()].map((p) => p.name),
    ]);
    const peer: Peer = {
      id: this.#nextId++,
      name,
      ws,
      audio: m.audio,
      client: m.client,
      clock: null,
      clockAtMs: this.clock.now(),
      tracks: new Map(),
      color: "red",
      settings: { ...DEFAULT_SETTINGS },
      skipped: new Set(),
    };
    this.#peers.set(peer.id, peer);
    this.send(peer, {
      type: "welcome",
      protocolVersion: PROTOCOL_VERSION,
      peerId: peer.id,
      name,
      session: this.opts.session,
      hostName: this.opts.hostName,
    });
    // The queue tells the peer what to fetch (current track first); a late joiner also gets
    // the running schedule, so its player starts at the current position.
    for (const m of this.hooks.greeting()) this.send(peer, m);
    this.hooks.emit({ type: "peer-joined", id: peer.id, name });
    if (!m.audio.device) {
      this.hooks.emit({
        type: "notice",
        level: "warn",
        message: `${name} has no audio output and will not hear playback.`,
      });
    }
    this.hooks.countChanged?.();
    this.listChanged();
    return peer;
  }

  #onMessage(p: Peer, m: PeerToHost) {
    switch (m.type) {
      case "ping": {
        const t2 = this.clock.now();
        this.send(p, { type: "pong", t1: m.t1, t2, t3: this.clock.now() });
        return;
      }
      case "clock": {
        const { type: _, ...report } = m;
        p.clock = report;
        p.clockAtMs = this.clock.now();
        this.#recolor(p);
        return;
      }
      case "settings":
        p.settings = { channel: m.channel, speakerDelayMs: m.speakerDelayMs };
        this.listChanged();
        return;
      case "bye":
        p.ws.close(1000, "bye");
        return;
      case "hello":
        this.send(p, { type: "notice", level: "warn", text: "Already joined." });
        return;
      case "trackState":
      case "request":
        return this.hooks.message(p, m);
      case "clicks":
        return this.hooks.clicks?.(p, m.on);
    }
  }

  /** The peer list as everyone sees it: clock status, settings, the current and next track. */
  list(): PeerInfo[] {
    const { current, next } = this.hooks.focus();
    const of = (p: Peer, id: string | undefined) => id === undefined ? undefined : p.tracks.get(id);
    return [...this.#peers.values()].map((p) => {
      const cur = of(p, current), nxt = of(p, next);
      return {
        id: p.id,
        name: p.name,
        clock: p.color,
        offsetMs: p.clock?.offsetMs ?? 0,
        rttMs: p.clock?.rttMs ?? 0,
        audio: p.audio,
        track: cur?.state ?? "none",
        ...p.settings,
        progress: cur?.progress ?? 0,
        next: nxt?.state ?? "none",
        nextProgress: nxt?.progress ?? 0,
        // No report yet means no estimate at all: leave it out rather than claim 0 ms.
        ...(p.clock ? { errorMs: p.clock.errorMs } : {}),
        client: p.client,
      };
    });
  }

  /**
   * Something shown in the list changed: the host (its UI) and every peer get the new list, so
   * both always show the same clock colours and track progress.
   */
  listChanged(): void {
    const peers = this.list();
    this.hooks.emit({ type: "peers", peers });
    this.broadcast({ type: "peers", peers });
  }

  /** Every joined peer, in the order they joined. */
  all(): Peer[] {
    return [...this.#peers.values()];
  }

  /** The peer with this display name (any case), or null after emitting a sentence. */
  named(name: string): Peer | null {
    const want = name.toLowerCase();
    const p = [...this.#peers.values()].find((x) => x.name.toLowerCase() === want);
    if (!p) {
      const names = [...this.#peers.values()].map((x) => x.name).join(", ") || "none";
      this.hooks.emit({ type: "error", message: `No peer named "${name}". Peers: ${names}.` });
    }
    return p ?? null;
  }

  /**
   * Each peer's sync estimate for the host's sync panel: its clock estimate's uncertainty and
   * its player's own placement error, as last reported (peers without a report yet are left
   * out: there is nothing to show).
   */
  health(): DeviceHealth[] {
    return [...this.#peers.values()].filter((p) => p.clock).map((p) => ({
      name: p.name,
      host: false,
      clockErrorMs: p.clock!.errorMs,
      placementMs: p.clock!.placementMs ?? 0,
    }));
  }

  /**
   * The slowest round trip among the peers ({@link UNKNOWN_RTT_MS} for one not yet measured),
   * plus the output a peer commits ahead of time (a browser's rendered buffer): the lead a
   * schedule needs to reach every device before its output is committed.
   */
  slowestRttMs(): number {
    let worst = 0;
    for (const p of this.#peers.values()) {
      worst = Math.max(worst, (p.clock?.rttMs ?? UNKNOWN_RTT_MS) + (p.clock?.bufferMs ?? 0));
    }
    return worst;
  }

  /** Sends to one peer; a socket already closing is ignored (its close removes the peer). */
  send(p: Peer, m: HostToPeer): void {
    try {
      p.ws.send(encodeMessage(m));
    } catch { /* socket closing; onClose cleans up */ }
  }
  /** Sends to the peer with this id, if it is still connected. */
  sendTo(id: number, m: HostToPeer): void {
    const p = this.#peers.get(id);
    if (p) this.send(p, m);
  }
  /** Sends to every peer at once (queue, peer list, heartbeat: nothing timed). */
  broadcast(m: HostToPeer): void {
    for (const p of this.#peers.values()) this.send(p, m);
  }

  /**
   * Sends a schedule to every peer, the farthest first, each later by the difference of half
   * round trips, so near and far peers receive it at about the same moment (docs/protocol.md).
   */
  dispatch(m: HostToPeer): void {
    const peers = [...this.#peers.values()].sort((a, b) =>
      (b.clock?.rttMs ?? 0) - (a.clock?.rttMs ?? 0)
    );
    const farthest = (peers[0]?.clock?.rttMs ?? 0) / 2;
    for (const p of peers) {
      const waitMs = farthest - (p.clock?.rttMs ?? 0) / 2;
      // Under a millisecond a timer would only add its own delay.
      if (waitMs < 1) this.send(p, m);
      else this.#setTimeout(() => this.send(p, m), waitMs);
    }
  }

  /** Re-grades every peer's clock; a peer whose reports stopped turns red (call every second). */
  recolorAll(): void {
    for (const p of this.#peers.values()) this.#recolor(p);
  }

  #recolor(p: Peer) {
    const c = clockColor(p.clock, this.clock.now() - p.clockAtMs);
    if (c !== p.color) {
      p.color = c;
      this.listChanged();
    }
  }

  /** Closes every peer's connection (the host is quitting). */
  closeAll(code: number, reason: string): void {
    for (const p of this.#peers.values()) p.ws.close(code, reason);
  }
}

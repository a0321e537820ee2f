/**
 * Who directs a swarm, decided the same way on every member from what they all see: the
 * server's presence list and the relayed `director` / `claim` / `resign` messages. Pure.
 *
 * - A director's authority has a `term`. A higher term wins; in one term the lower id wins.
 * - Nobody directs (first member, the director left, resigned or fell silent for
 *   {@link SILENT_MS}): the lowest present id that has not resigned in this term claims the
 *   next term. If that member stays silent too, the next one takes its turn every
 *   {@link TURN_MS}, so a member that hangs cannot block the swarm.
 * - "Take control" claims the next term at once; "Resign" hands over to the lowest other id.
 * - The transport (what plays, from when) travels in every heartbeat, so a new director
 *   carries on with what was playing.
 */
import type { MemberId, SwarmState, Transport } from "./protocol.ts";

/** The director says it is alive this often. */
export const HEARTBEAT_MS = 500;
/** A director not heard for this long is gone (a closed page is known at once from presence). */
export const SILENT_MS = 2000;
/** How long an elected member has to claim before the next one's turn. */
export const TURN_MS = 1000;
/** A newcomer listens this long for a director before it counts as vacant. */
export const LISTEN_MS = 700;

export const NO_TRANSPORT: Transport = { file: null, playing: false, atMs: 0, fromSec: 0 };

export class Directorship {
  director: MemberId | null = null;
  term = 0;
  transport: Transport = NO_TRANSPORT;
  #present = new Set<MemberId>();
  #heardMs = 0;
  #vacantSinceMs: number;
  #resigned = new Set<MemberId>();

  constructor(readonly me: MemberId, nowMs: number) {
    this.#present.add(me);
    // A newcomer listens before it may elect: the swarm may well have a director already.
    this.#vacantSinceMs = nowMs + LISTEN_MS;
  }

  get iDirect(): boolean {
    return this.director === this.me;
  }

  present(ids: Iterable<MemberId>): void {
    this.#present = new Set([this.me, ...ids]);
  }
  joined(id: MemberId): void {
    this.#present.add(id);
  }
  left(id: MemberId, nowMs: number): void {
    this.#present.delete(id);
    this.#resigned.delete(id);
    if (id === this.director) this.#vacate(nowMs);
  }

  #vacate(nowMs: number) {
    this.director = null;
    this.#vacantSinceMs = Math.max(this.#vacantSinceMs, nowMs);
  }

  #adopt(from: MemberId, term: number, nowMs: number) {
    if (term !== this.term) this.#resigned.clear();
    this.director = from;
    this.term = term;
    this.#heardMs = nowMs;
  }

  /** A relayed state message; returns true when who directs, or the transport, changed. */
  onState(from: MemberId, s: SwarmState, nowMs: number): boolean {
    const before = `${this.director}/${this.term}/${JSON.stringify(this.transport)}`;
    switch (s.kind) {
      case "director":
      case "claim":
        if (
          s.term > this.term ||
          (s.term === this.term && (this.director === null || from <= this.director))
        ) {
          this.#adopt(from, s.term, nowMs);
          if (s.kind === "director") this.transport = s.transport;
        }
        break;
      case "resign":
        if (from === this.director && s.term >= this.term) {
          this.term = s.term;
          this.#resigned.add(from);
          this.#vacate(nowMs);
        }
        break;
      case "status":
        break;
    }
    return before !== `${this.director}/${this.term}/${JSON.stringify(this.transport)}`;
  }

  /**
   * Runs the election clock; returns the message to send when this member must claim.
   * Call every ~100–250 ms.
   */
  tick(nowMs: number): SwarmState | null {
    if (
      this.director !== null && this.director !== this.me && nowMs - this.#heardMs > SILENT_MS
    ) this.#vacate(nowMs);
    if (this.director !== null || nowMs < this.#vacantSinceMs) return null;
    const ids = [...this.#present].sort((a, b) => a - b);
    const willing = ids.filter((id) => !this.#resigned.has(id));
    const order = willing.length ? willing : ids;
    const turn = Math.floor((nowMs - this.#vacantSinceMs) / TURN_MS) % order.length;
    if (order[turn] !== this.me) return null;
    return this.takeControl(nowMs);
  }

  /** This member directs from the next term on; returns the claim to send. */
  takeControl(nowMs: number): SwarmState {
    this.#adopt(this.me, this.term + 1, nowMs);
    return { kind: "claim", term: this.term };
  }

  /** This member steps down; returns the message to send (null when it did not direct). */
  resign(nowMs: number): SwarmState | null {
    if (!this.iDirect) return null;
    this.#resigned.add(this.me);
    this.#vacate(nowMs);
    return { kind: "resign", term: this.term };
  }

  /** The director's heartbeat (null when this member does not direct). */
  heartbeat(): SwarmState | null {
    return this.iDirect ? { kind: "director", term: this.term, transport: this.transport } : null;
  }

  /** The director changes what plays. */
  setTransport(t: Transport): void {
    this.transport = t;
  }
}

/** Where a transport is at server time `nowMs` (seconds into the file). */
export function positionAt(t: Transport, nowMs: number): number {
  return t.playing ? Math.max(0, t.fromSec + (nowMs - t.atMs) / 1000) : t.fromSec;
}

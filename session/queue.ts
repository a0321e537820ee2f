/**
 * The host's play queue: track ids in play order and which one is current. Pure; positions in
 * and out of the public methods are 1-based, as the user sees them. Tracks before the current
 * one have been played (or skipped); the one after it plays next.
 */

import type { EngineEvent } from "./commands.ts";
import type { TrackInfo } from "./protocol.ts";

export const MAX_QUEUE_TRACKS = 100;

export class TrackQueue {
  #ids: string[] = [];
  #current = -1;

  constructor(readonly titleOf: (id: string) => string) {}

  get ids(): readonly string[] {
    return this.#ids;
  }
  /** Index (0-based) of the current track, −1 when the queue is empty. */
  get current(): number {
    return this.#current;
  }
  get currentId(): string | undefined {
    return this.#ids[this.#current];
  }
  get nextId(): string | undefined {
    return this.#ids[this.#current + 1];
  }
  get full(): boolean {
    return this.#ids.length >= MAX_QUEUE_TRACKS;
  }
  has(id: string): boolean {
    return this.#ids.includes(id);
  }

  add(id: string): void {
    this.#ids.push(id);
    if (this.#current < 0) this.#current = 0;
  }

  /** Makes the next track current; false at the end of the queue. */
  advance(): boolean {
    if (this.#current + 1 >= this.#ids.length) return false;
    this.#current++;
    return true;
  }

  /** Moves the track at `from` to `to`; the current track stays current. Error sentence or null. */
  move(from: number, to: number): string | null {
    const bad = this.#checkPosition(from) ?? this.#checkPosition(to);
    if (bad) return bad;
    const cur = this.currentId;
    const [id] = this.#ids.splice(from - 1, 1);
    this.#ids.splice(to - 1, 0, id);
    this.#current = cur === undefined ? -1 : this.#ids.indexOf(cur);
    return null;
  }

  /** Removes the track at `position`; returns its id, or an error sentence. */
  remove(position: number): { id: string } | { error: string } {
    const bad = this.#checkPosition(position);
    if (bad) return { error: bad };
    const [id] = this.#ids.splice(position - 1, 1);
    if (position - 1 < this.#current) this.#current--;
    // Removing the current track makes the one after it current (or the new last one).
    this.#current = Math.min(this.#current, this.#ids.length - 1);
    return { id };
  }

  /** The tracks whose audio should be decoded and ready: the current one and the next. */
  wanted(): string[] {
    return wantedOf(this.#ids, this.#current);
  }

  #checkPosition(p: number): string | null {
    if (this.#ids.length === 0) return "The queue is empty.";
    if (!Number.isInteger(p) || p < 1 || p > this.#ids.length) {
      return `There is no track ${p}: the queue has ${this.#ids.length} (1–${this.#ids.length}).`;
    }
    return null;
  }

  /** Position (1-based) of a track, for sentences. */
  describe(id: string): string {
    return `"${this.titleOf(id)}" (${this.#ids.indexOf(id) + 1})`;
  }
}

/**
 * Order in which a device fetches the queue's files: the current track, then the ones after it
 * in play order, then the already-played ones (someone may seek back to them).
 */
export function fetchOrder(ids: readonly string[], current: number): string[] {
  const c = Math.max(0, current);
  return [...ids.slice(c), ...ids.slice(0, c)];
}

/** Same as {@link TrackQueue.wanted} for a queue known only as ids and an index. */
export function wantedOf(ids: readonly string[], current: number): string[] {
  const c = Math.max(0, current);
  return ids.slice(c, c + 2);
}

/** The `queue` event as host and peers emit it: each track with its 1-based position. */
export function queueEvent(tracks: readonly TrackInfo[], current: number): EngineEvent {
  return { type: "queue", tracks: tracks.map((t, i) => ({ position: i + 1, ...t })), current };
}

/**
 * The host's transport: play, pause, resume, stop, seek and skip, and the gapless transition
 * from one queued track to the next. Every command becomes a schedule ("frame P is heard at host
 * time T") sent to the peers and to the host's own output, T a lead time ahead of now so it
 * arrives everywhere before it is due. Pure: time, sending and the output come in as functions,
 * so it is tested with a fake clock and fake timers.
 */
import type { Schedule } from "../audio/player.ts";
import type { EngineEvent } from "./commands.ts";
import type { NextMsg, PauseMsg, PlayMsg, TrackInfo } from "./protocol.ts";
import type { TrackQueue } from "./queue.ts";

/** Lead added to "now" for every transport command: write-ahead (70 ms) + dispatch margin. */
export const BASE_LEAD_MS = 120;

/** What the transport needs of a queued track. */
export interface PlayableTrack {
  info: Pick<TrackInfo, "id" | "title" | "artist" | "album" | "durationSec">;
  rateHz: number;
  /** Length in sample frames. */
  frames: number;
}

/** Where playback is. `playing`: frame `fromFrame` is heard at host time `atHostMs`. */
export type TransportState =
  | { state: "stopped" }
  | { state: "playing"; trackId: string; fromFrame: number; atHostMs: number }
  | { state: "paused"; trackId: string; frame: number };

/** A schedule for the peers. */
export type ScheduleMsg = PlayMsg | PauseMsg | NextMsg;

/** Timers, injectable so tests can run the clock by hand. */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** What the transport needs from the rest of the host. */
export interface TransportDeps {
  clock: { now(): number };
  queue: TrackQueue;
  track(id: string): PlayableTrack | undefined;
  /** Devices (as sentences) not yet ready for a track; empty when every device has it. */
  notReady(trackId: string): string[];
  /** The slowest peer round trip (ms), added to {@link BASE_LEAD_MS}. */
  slowestRttMs(): number;
  /** Sends a schedule to every peer. */
  dispatch(m: ScheduleMsg): void;
  /** Schedules the host's own output. */
  schedule(s: Schedule): void;
  emit(e: EngineEvent): void;
  /** The current track changed: tell everyone, keep current and next decoded, then {@link Transport.arm}. */
  queueChanged(): void;
  timers?: Timers;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as number | undefined),
};

/** Where playback is, and the schedules that take every device there together. */
export class Transport {
  #state: TransportState = { state: "stopped" };
  /** The transition already scheduled on every device: `trackId` starts at `atHostMs`. */
  #armed: { trackId: string; atHostMs: number } | null = null;
  #endTimer: unknown;
  /** The current track should start as soon as every device has it (auto-advance waited). */
  #startWhenReady = false;
  readonly #timers: Timers;

  constructor(readonly deps: TransportDeps) {
    this.#timers = deps.timers ?? realTimers;
  }

  get state(): Readonly<TransportState> {
    return this.#state;
  }
  get armed(): Readonly<{ trackId: string; atHostMs: number }> | null {
    return this.#armed;
  }
  /** True while the current track waits for devices to get it before it starts by itself. */
  get waitingToStart(): boolean {
    return this.#startWhenReady;
  }
  /** True if `trackId` is playing or paused. */
  holds(trackId: string): boolean {
    return this.#state.state !== "stopped" && this.#state.trackId === trackId;
  }

  /** Lead for a command issued now: it must reach the slowest peer before it is due. */
  leadMs(): number {
    return BASE_LEAD_MS + this.deps.slowestRttMs();
  }

  /** What a peer joining now must be told to play along: the running schedule, if any. */
  runningSchedule(): ScheduleMsg[] {
    const s = this.#state;
    if (s.state !== "playing") return [];
    const out: ScheduleMsg[] = [
      { type: "play", trackId: s.trackId, fromFrame: s.fromFrame, atHostMs: s.atHostMs },
    ];
    if (this.#armed) out.push({ type: "next", ...this.#armed });
    return out;
  }

  // ---------- user commands (each cancels a pending start-when-ready) ----------

  /** Plays the current track from `fromFrame` (from where it was paused, if it was). */
  play(fromFrame = 0): void {
    this.#startWhenReady = false;
    this.#play(fromFrame);
  }

  pause(): void {
    this.#startWhenReady = false;
    const s = this.#state;
    if (s.state !== "playing") {
      this.deps.emit({ type: "notice", level: "info", message: "Not playing." });
      return;
    }
    const at = this.deps.clock.now() + this.leadMs();
    const frame = this.frameAt(at);
    this.#state = { state: "paused", trackId: s.trackId, frame };
    this.#silenceAt(at);
    const t = this.#track(s.trackId);
    this.deps.emit({
      type: "paused",
      trackId: s.trackId,
      positionSec: frame / t.rateHz,
      atHostMs: at,
    });
  }

  resume(): void {
    this.#startWhenReady = false;
    if (this.#state.state !== "paused") {
      this.deps.emit({ type: "notice", level: "info", message: "Not paused." });
      return;
    }
    this.#play();
  }

  stop(): void {
    this.#startWhenReady = false;
    const at = this.deps.clock.now() + this.leadMs();
    if (this.#state.state === "playing") this.#silenceAt(at);
    this.#state = { state: "stopped" };
    this.deps.emit({ type: "stopped", atHostMs: at });
  }

  /** Playing: restarts every device at `seconds`; otherwise the position to resume from. */
  seek(seconds: number): void {
    this.#startWhenReady = false;
    const t = this.#current();
    if (!t) {
      this.deps.emit({ type: "error", message: "Nothing to seek: the queue is empty." });
      return;
    }
    if (seconds >= t.info.durationSec) {
      this.deps.emit({
        type: "error",
        message: `Cannot seek to ${seconds} s: "${t.info.title}" is ${
          t.info.durationSec.toFixed(1)
        } s long.`,
      });
      return;
    }
    const frame = Math.round(seconds * t.rateHz);
    if (this.#state.state === "playing") {
      this.#startAt(t, frame, this.deps.clock.now() + this.leadMs());
    } else {
      this.#state = { state: "paused", trackId: t.info.id, frame };
      this.deps.emit({
        type: "paused",
        trackId: t.info.id,
        positionSec: seconds,
        atHostMs: this.deps.clock.now(),
      });
    }
  }

  /** Moves the queue on; if it was playing, the next track plays (or starts once it can). */
  skipTrack(): void {
    this.#startWhenReady = false;
    const armed = this.#armed;
    const now = this.deps.clock.now();
    if (armed && armed.atHostMs <= now + this.leadMs()) {
      // The next track starts sooner than a skip could take effect: it is already the skip.
      const title = this.#track(armed.trackId).info.title;
      this.deps.emit({
        type: "notice",
        level: "info",
        message: `Already moving on to "${title}".`,
      });
      return;
    }
    const wasPlaying = this.#state.state === "playing";
    if (!this.deps.queue.advance()) {
      this.deps.emit({
        type: "error",
        message: "Nothing to skip to: this is the last track in the queue.",
      });
      return;
    }
    const wasPaused = this.#state.state === "paused";
    this.#state = { state: "stopped" };
    this.deps.queueChanged();
    if (!wasPlaying) {
      // A paused track is left behind: the new one waits at its start.
      if (wasPaused) this.deps.emit({ type: "stopped", atHostMs: now });
      return;
    }
    this.#play();
    // Not everyone has the next track yet: stop the old one and start when they do.
    if ((this.#state as TransportState).state !== "playing") {
      const at = this.deps.clock.now() + this.leadMs();
      this.#silenceAt(at);
      this.#startWhenReady = true;
      this.deps.emit({ type: "stopped", atHostMs: at });
    }
  }

  // ---------- what the rest of the host calls ----------

  /** Every device has `trackId` now: start the current track if it waited, or arm the next. */
  readyEverywhere(trackId: string): void {
    if (this.#startWhenReady && trackId === this.deps.queue.currentId) {
      this.#startWhenReady = false;
      this.#play();
    } else if (trackId === this.deps.queue.nextId) {
      this.arm();
    }
  }

  /**
   * Plans the transition to the next track: once the next track is ready everywhere, every
   * device is told to start it at the exact host time the current one ends, so it begins on
   * the frame after the last one, the same on all devices. Re-run after anything that changes
   * the next track, its readiness or the end time.
   */
  arm(): void {
    this.#timers.clear(this.#endTimer);
    const end = this.endsAt();
    if (end === null) {
      this.#armed = null;
      return;
    }
    const next = this.deps.queue.nextId;
    const want = next !== undefined && this.deps.notReady(next).length === 0 ? next : undefined;
    const armed = this.#armed;
    if (want !== armed?.trackId || (armed && armed.atHostMs !== end)) {
      // Only a change is sent: a `next` without a track cancels one sent before.
      if (want || armed) {
        this.deps.dispatch({ type: "next", ...(want ? { trackId: want } : {}), atHostMs: end });
        this.deps.schedule(
          want
            ? { kind: "play", trackId: want, fromFrame: 0, atHostMs: end }
            : { kind: "silence", atHostMs: end },
        );
      }
      this.#armed = want ? { trackId: want, atHostMs: end } : null;
    }
    this.#endTimer = this.#timers.set(
      () => this.#trackEnded(end),
      Math.max(0, end - this.deps.clock.now()),
    );
  }

  /** Host time at which the playing track's last frame has been heard, if playing. */
  endsAt(): number | null {
    const s = this.#state;
    if (s.state !== "playing") return null;
    const t = this.#track(s.trackId);
    return s.atHostMs + ((t.frames - s.fromFrame) * 1000) / t.rateHz;
  }

  /** Frame of the current track heard at host time `atMs`. */
  frameAt(atMs: number): number {
    const s = this.#state;
    if (s.state === "paused") return s.frame;
    if (s.state !== "playing") return 0;
    const t = this.#track(s.trackId);
    const frame = s.fromFrame + ((atMs - s.atHostMs) * t.rateHz) / 1000;
    // Between a track's end and the timer that moves the queue on, it rests on its last frame.
    return Math.min(t.frames, Math.max(0, frame));
  }

  /** Cancels the end-of-track timer (the host is quitting). */
  close(): void {
    this.#timers.clear(this.#endTimer);
  }

  // ---------- inside ----------

  #track(id: string): PlayableTrack {
    const t = this.deps.track(id);
    if (!t) throw new Error(`Transport: track ${id} is not in the host's tracks.`);
    return t;
  }
  #current(): PlayableTrack | undefined {
    const id = this.deps.queue.currentId;
    return id === undefined ? undefined : this.deps.track(id);
  }

  #play(fromFrame = 0): void {
    const t = this.#current();
    if (!t) {
      this.deps.emit({
        type: "error",
        message: "Nothing to play: the queue is empty. Use add PATH.",
      });
      return;
    }
    const s = this.#state;
    if (s.state === "playing") {
      this.deps.emit({ type: "notice", level: "info", message: "Already playing." });
      return;
    }
    if (s.state === "paused" && s.trackId === t.info.id && fromFrame === 0) fromFrame = s.frame;
    const waiting = this.deps.notReady(t.info.id);
    if (waiting.length) {
      this.deps.emit({
        type: "error",
        message: `Cannot play "${t.info.title}" yet: not ready on ${waiting.join(", ")}.`,
      });
      return;
    }
    this.#startAt(t, fromFrame, this.deps.clock.now() + this.leadMs());
  }

  #startAt(t: PlayableTrack, fromFrame: number, atHostMs: number): void {
    this.#state = { state: "playing", trackId: t.info.id, fromFrame, atHostMs };
    this.#armed = null; // this play replaces every later schedule on every device
    this.deps.dispatch({ type: "play", trackId: t.info.id, fromFrame, atHostMs });
    this.deps.schedule({ kind: "play", trackId: t.info.id, fromFrame, atHostMs });
    this.#emitPlaying(t, fromFrame, atHostMs);
    this.arm();
  }

  #emitPlaying(t: PlayableTrack, fromFrame: number, atHostMs: number) {
    const { id, title, artist, album, durationSec } = t.info;
    this.deps.emit({
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

  #silenceAt(atHostMs: number) {
    this.#timers.clear(this.#endTimer);
    this.#armed = null;
    this.deps.dispatch({ type: "pause", atHostMs });
    this.deps.schedule({ kind: "silence", atHostMs });
  }

  /** The current track has just ended (by the schedule): move the queue on. */
  #trackEnded(end: number) {
    if (this.endsAt() !== end) return;
    const armed = this.#armed;
    this.#armed = null;
    const queue = this.deps.queue;
    if (armed && armed.trackId === queue.nextId) {
      // Every device already started it at `end`: only the host's own books move on.
      queue.advance();
      const t = this.#track(armed.trackId);
      this.#state = { state: "playing", trackId: t.info.id, fromFrame: 0, atHostMs: end };
      this.#emitPlaying(t, 0, end);
      this.deps.queueChanged();
      return;
    }
    this.#state = { state: "stopped" };
    if (queue.advance()) {
      const t = this.#current()!;
      this.#startWhenReady = true;
      this.deps.queueChanged();
      this.deps.emit({
        type: "notice",
        level: "warn",
        message: `"${t.info.title}" waits for ${
          this.deps.notReady(t.info.id).join(", ")
        }; it starts when they are ready (or use skip-peer NAME).`,
      });
    } else {
      this.deps.emit({ type: "stopped", atHostMs: end });
      this.deps.emit({ type: "notice", level: "info", message: "End of the queue." });
    }
  }
}

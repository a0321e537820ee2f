/**
 * What a peer does with the host's schedules and its player's events, what it tells its screens,
 * and its song requests: the same on a native peer (`session/peer.ts`) and in a browser
 * (`ui/engine/browser_peer.ts`). Pure: the output, the events and the track list come in as
 * functions.
 */
import type { PlayerEvent, Schedule } from "../audio/player.ts";
import type { EngineEvent } from "./commands.ts";
import type { NextMsg, PauseMsg, PlayMsg, RequestResultMsg, TrackInfo } from "./protocol.ts";

export interface PlaybackDeps {
  schedule(s: Schedule): void;
  emit(e: EngineEvent): void;
  track(id: string): TrackInfo | undefined;
  /** A track's sample rate: `play` frame numbers count at it. */
  rateOf(id: string): number;
  /** Re-placements smaller than this (ms) are routine, not worth a notice. Default 0. */
  resyncNoticeMs?: number;
}

export class PeerPlayback {
  /** The last `play` (from the host, or a transition the player made), for where a pause is. */
  #lastPlay: { trackId: string; fromFrame: number; atHostMs: number } | null = null;

  constructor(readonly deps: PlaybackDeps) {}

  /** A schedule from the host. */
  onSchedule(m: PlayMsg | PauseMsg | NextMsg): void {
    const d = this.deps;
    switch (m.type) {
      case "play":
        this.#lastPlay = m;
        d.schedule({
          kind: "play",
          trackId: m.trackId,
          fromFrame: m.fromFrame,
          atHostMs: m.atHostMs,
        });
        this.#emitPlaying(m);
        return;
      case "pause":
        d.schedule({ kind: "silence", atHostMs: m.atHostMs });
        d.emit({ type: "paused", ...this.#positionAt(m.atHostMs), atHostMs: m.atHostMs });
        return;
      case "next":
        d.schedule(
          m.trackId
            ? { kind: "play", trackId: m.trackId, fromFrame: 0, atHostMs: m.atHostMs }
            : { kind: "silence", atHostMs: m.atHostMs },
        );
        d.emit({
          type: "next",
          trackId: m.trackId ?? null,
          title: m.trackId ? d.track(m.trackId)?.title ?? null : null,
          atHostMs: m.atHostMs,
        });
        return;
    }
  }

  /** What the player did: heard starts and ends, transitions, re-placements. */
  onPlayerEvent(e: PlayerEvent): void {
    const d = this.deps;
    if (e.type === "started" || e.type === "ended") {
      d.emit({ type: e.type, trackId: e.trackId, atHostMs: e.atHostMs });
    }
    if (e.type === "started" && e.trackId !== this.#lastPlay?.trackId) {
      // The queue moved on by itself (a `next`): what is heard is what the screen shows.
      this.#lastPlay = { trackId: e.trackId, fromFrame: 0, atHostMs: e.atHostMs };
      this.#emitPlaying(this.#lastPlay);
    } else if (e.type === "ended" && e.trackId === this.#lastPlay?.trackId) {
      // Nothing followed: the end of the queue.
      this.#lastPlay = null;
      d.emit({ type: "stopped", atHostMs: e.atHostMs });
    }
    if (e.type === "resync" && Math.abs(e.errorMs) >= (d.resyncNoticeMs ?? 0)) {
      d.emit({
        type: "notice",
        level: "warn",
        message: `Resynchronised playback (was ${e.errorMs.toFixed(1)} ms off).`,
      });
    }
    if (e.type === "missing") {
      d.emit({
        type: "notice",
        level: "info",
        message: "The song is already playing: joining in as soon as it is loaded.",
      });
    }
  }

  reset(): void {
    this.#lastPlay = null;
  }

  #emitPlaying(p: { trackId: string; fromFrame: number; atHostMs: number }) {
    const t = this.deps.track(p.trackId);
    this.deps.emit({
      type: "playing",
      trackId: p.trackId,
      title: t?.title ?? p.trackId,
      artist: t?.artist,
      album: t?.album,
      durationSec: t?.durationSec,
      positionSec: p.fromFrame / this.deps.rateOf(p.trackId),
      atHostMs: p.atHostMs,
    });
  }

  /** Where the last `play` had got to at host time `atHostMs` (what a pause leaves). */
  #positionAt(atHostMs: number): { trackId: string; positionSec: number } {
    const p = this.#lastPlay;
    if (!p) return { trackId: "", positionSec: 0 };
    const sec = p.fromFrame / this.deps.rateOf(p.trackId) +
      Math.max(0, atHostMs - p.atHostMs) / 1000;
    const dur = this.deps.track(p.trackId)?.durationSec ?? sec;
    return { trackId: p.trackId, positionSec: Math.min(sec, dur) };
  }
}

/** A peer's song requests: the files it offered, kept until the host decides. */
export class SongRequests {
  readonly #requests = new Map<
    number,
    { fileName: string; title: string; bytes: Uint8Array<ArrayBuffer> }
  >();
  #next = 1;

  constructor(readonly emit: (e: EngineEvent) => void) {}

  /** Files a new request and returns its number. */
  add(fileName: string, title: string, bytes: Uint8Array<ArrayBuffer>): number {
    const id = this.#next++;
    this.#requests.set(id, { fileName, title, bytes });
    return id;
  }

  get(id: number) {
    return this.#requests.get(id);
  }

  /** Tells the screens where request `id` stands. */
  event(id: number, state: string, reason?: string, progress?: number): void {
    const r = this.#requests.get(id);
    if (!r) return;
    this.emit({
      type: "request",
      id,
      fileName: r.fileName,
      title: r.title,
      state,
      ...(reason ? { reason } : {}),
      ...(progress !== undefined ? { progress } : {}),
    });
  }

  /** The host's word on a request; a final one lets the file go. */
  result(m: RequestResultMsg): void {
    this.event(m.requestId, m.outcome, m.reason);
    if (m.outcome !== "waiting" && m.outcome !== "uploading") this.#requests.delete(m.requestId);
  }
}

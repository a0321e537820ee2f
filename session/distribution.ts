/**
 * Getting the queue onto every device: which devices have which track, who the queue waits for,
 * the host's own decoded audio (only the current and next track, so an evening's queue does not
 * fill memory), and what happens when a peer cannot get a file (`retry PEER`, `skip-peer PEER`).
 * File reading comes in as `load`, so this is tested without a disk or an audio device.
 */
import type { Pcm } from "../audio/player.ts";
import type { EngineEvent } from "./commands.ts";
import type { PeerSet } from "./peers.ts";
import type { Peer } from "./peers.ts";
import type { TrackInfo, TrackStateMsg } from "./protocol.ts";

/** What distribution needs of a queued track. */
export interface SharedTrack {
  info: Pick<TrackInfo, "id" | "fileName" | "title">;
}

/** What distribution needs from the rest of the host. */
export interface DistributionDeps<T extends SharedTrack> {
  /** The host's display name, for "Alex (host, decoding)". */
  hostName: string;
  peers: PeerSet;
  /** The current and next track ids (the ones that must be decoded and ready everywhere). */
  wanted(): string[];
  currentId(): string | undefined;
  track(id: string): T | undefined;
  /** The host's audio engine. */
  output: { addTrack(pcm: Pcm): void; dropTrack(trackId: string): void };
  /** Reads a queued file again and decodes it; rejects with the reason it can no longer be used. */
  load(t: T): Promise<Pcm>;
  emit(e: EngineEvent): void;
  /** Every device has `trackId`, or was told to go on without it. */
  readyEverywhere(trackId: string): void;
  /** A queued file can no longer be read: it must leave the queue (with the sentence `why`). */
  unreadable(trackId: string, why: string): void;
}

/** Which device has which queued track, and the host's own decoded current and next track. */
export class Distribution<T extends SharedTrack> {
  /** Tracks decoded into the host's audio engine (the current and the next). */
  readonly #decoded = new Set<string>();
  readonly #decoding = new Set<string>();

  constructor(readonly deps: DistributionDeps<T>) {}

  /** True if the host's audio engine holds this track decoded. */
  isDecoded(trackId: string): boolean {
    return this.#decoded.has(trackId);
  }

  /** A freshly added track was decoded: keep the audio if the track is wanted now. */
  added(pcm: Pcm): void {
    if (!this.deps.wanted().includes(pcm.id)) return;
    this.deps.output.addTrack(pcm);
    this.#decoded.add(pcm.id);
  }

  /** Keeps exactly the current and next track decoded in the host's audio engine. */
  keepDecoded(): void {
    const wanted = this.deps.wanted();
    for (const id of this.#decoded) {
      if (!wanted.includes(id)) {
        this.#decoded.delete(id);
        this.deps.output.dropTrack(id);
      }
    }
    for (const id of wanted) {
      if (this.#decoded.has(id) || this.#decoding.has(id)) continue;
      const t = this.deps.track(id);
      if (!t) continue;
      this.#decoding.add(id);
      this.deps.load(t)
        .then((pcm) => {
          // It may have stopped being current or next while it was decoding.
          if (!this.deps.wanted().includes(id)) return;
          this.deps.output.addTrack(pcm);
          this.#decoded.add(id);
          this.recheck(id);
        })
        .catch((e) => this.deps.unreadable(id, (e as Error).message))
        .finally(() => this.#decoding.delete(id));
    }
  }

  /** Devices (by name) not yet ready for a track, with what they are doing. */
  notReady(trackId: string): string[] {
    const out: string[] = [];
    if (!this.#decoded.has(trackId)) out.push(`${this.deps.hostName} (host, decoding)`);
    for (const p of this.deps.peers.values()) {
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

  /** Who the current track waits for (empty when it does not wait). */
  waitingFor(): string[] {
    const id = this.deps.currentId();
    return id === undefined ? [] : this.notReady(id);
  }

  /** A device got a track (or stopped mattering for it): go on with what waited for it. */
  recheck(trackId: string): void {
    const t = this.deps.track(trackId);
    if (!t || this.notReady(trackId).length > 0) return;
    this.deps.emit({ type: "track-ready-all", trackId, fileName: t.info.fileName });
    this.deps.readyEverywhere(trackId);
  }

  /** A peer left: the current and next track may no longer wait for anyone. */
  peerLeft(): void {
    for (const id of this.deps.wanted()) this.recheck(id);
  }

  /** A peer's `trackState` report. */
  trackState(p: Peer, m: TrackStateMsg): void {
    const t = this.deps.track(m.trackId);
    if (!t) return;
    p.tracks.set(m.trackId, { state: m.state, progress: m.progress, error: m.error });
    const fileName = t.info.fileName;
    this.deps.emit({
      type: "transfer",
      trackId: m.trackId,
      fileName,
      peer: p.name,
      state: m.state,
      progress: m.progress,
      ...(m.error ? { error: m.error } : {}),
    });
    if (m.state === "ready") {
      p.skipped.delete(m.trackId);
      this.deps.emit({ type: "track-ready", trackId: m.trackId, fileName, peer: p.name });
      this.recheck(m.trackId);
    }
    if (m.state === "failed") {
      const error = m.error ?? "unknown error";
      this.deps.emit({
        type: "transfer-failed",
        peer: p.name,
        trackId: m.trackId,
        fileName,
        error,
      });
      this.deps.emit({
        type: "error",
        message: `${p.name} could not get "${fileName}": ${error}. ` +
          `Use retry ${p.name} to try again, or skip-peer ${p.name} to play without them.`,
      });
    }
    this.deps.peers.listChanged();
  }

  /** `retry PEER`: ask it to fetch its failed tracks again; `skip-peer PEER`: play without it. */
  decide(cmd: "retry" | "skip-peer", name: string): void {
    const p = this.deps.peers.named(name);
    if (!p) return;
    if (cmd === "retry") {
      // A skipped track stays skipped (the others do not start waiting again); it counts as
      // ready for this peer once the peer reports it ready.
      this.deps.peers.send(p, { type: "retry" });
      this.deps.emit({ type: "notice", level: "info", message: `Asked ${p.name} to try again.` });
      return;
    }
    const missing = this.deps.wanted().filter((id) => p.tracks.get(id)?.state !== "ready");
    if (!missing.length) {
      this.deps.emit({
        type: "notice",
        level: "info",
        message: `${p.name} already has the current and next track; nothing to skip.`,
      });
      return;
    }
    const titles = missing.map((id) => `"${this.deps.track(id)?.info.title ?? id}"`).join(" and ");
    for (const id of missing) p.skipped.add(id);
    this.deps.emit({
      type: "notice",
      level: "info",
      message: `Playing ${titles} without waiting for ${p.name}; they join in once they have it.`,
    });
    for (const id of missing) this.recheck(id);
  }
}

import type { HostMap, SimClock } from "../net/local_clock.ts";
import { keepLargeBlocksApart, releaseFreedMemorySoon } from "./release_memory.ts";
import type { ChannelMode, Pcm, PlayerEvent, PlayerStats, Schedule } from "./player.ts";
import type { SinkBackend } from "./sink.ts";

export type ToWorker =
  | {
    type: "open";
    backend: SinkBackend | "auto";
    wavPath?: string;
    sim: SimClock;
    /** Testing aid: the device's sound comes this much later than it reports (ms, ≥ 0). */
    hiddenLatencyMs?: number;
  }
  | { type: "map"; map: HostMap }
  | { type: "track"; pcm: Pcm }
  | { type: "drop"; trackId: string }
  | { type: "schedule"; schedule: Schedule }
  | { type: "volume"; volume: number; muted: boolean }
  | { type: "speakerDelay"; ms: number }
  | { type: "channel"; channel: ChannelMode }
  | { type: "clicks"; on: boolean }
  | { type: "probe"; atHostMs: number }
  | { type: "close" };

export interface OutputStatus {
  playing: { trackId: string; frame: number } | null;
  stats: PlayerStats;
  deviceRatePpm: number;
  deviceResets: number;
  aheadMs: number;
  /** Long tracks played from disk through windows (./track_windows.ts), and windows read. */
  trackWindows: { tracks: number; reads: number };
}

export type FromWorker =
  | { type: "opened"; backend: SinkBackend; device: string; audible: boolean; failure?: string }
  | { type: "player"; event: PlayerEvent }
  | ({ type: "status" } & OutputStatus)
  | { type: "error"; text: string }
  | { type: "closed" };

/**
 * The main thread's handle on the audio worker: a typed message port. All timing-critical work
 * happens in the worker; this side only forwards commands and surfaces events.
 */
export class AudioOutput {
  #worker: Worker;
  #opened: Promise<Extract<FromWorker, { type: "opened" }>>;
  #closed: Promise<void>;
  status: OutputStatus | null = null;
  onEvent: (e: PlayerEvent) => void = () => {};
  onError: (text: string) => void = () => {};

  constructor(
    opts: {
      backend: SinkBackend | "auto";
      wavPath?: string;
      sim: SimClock;
      hiddenLatencyMs?: number;
    },
  ) {
    keepLargeBlocksApart();
    this.#worker = new Worker(new URL("./output_worker.ts", import.meta.url), { type: "module" });
    let opened!: (m: Extract<FromWorker, { type: "opened" }>) => void;
    let closed!: () => void;
    this.#opened = new Promise((r) => opened = r);
    this.#closed = new Promise((r) => closed = r);
    this.#worker.onmessage = (ev: MessageEvent<FromWorker>) => {
      const m = ev.data;
      if (m.type === "opened") opened(m);
      else if (m.type === "player") this.onEvent(m.event);
      else if (m.type === "status") this.status = m;
      else if (m.type === "error") this.onError(m.text);
      else if (m.type === "closed") closed();
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.onError(`audio engine failed: ${e.message}`);
    };
    this.#send({ type: "open", ...opts });
  }

  #send(m: ToWorker, transfer: Transferable[] = []) {
    this.#worker.postMessage(m, transfer);
  }

  opened() {
    return this.#opened;
  }
  setHostMap(map: HostMap) {
    this.#send({ type: "map", map });
  }
  /**
   * Hands the PCM to the audio thread. Its buffers are moved, not copied: `pcm.left` and
   * `pcm.right` are empty afterwards, so read what you need (e.g. the length) first.
   */
  addTrack(pcm: Pcm) {
    const buffers = new Set([pcm.left.buffer, pcm.right.buffer]) as Set<ArrayBuffer>;
    this.#send({ type: "track", pcm }, [...buffers]);
    releaseFreedMemorySoon();
  }
  dropTrack(trackId: string) {
    this.#send({ type: "drop", trackId });
    releaseFreedMemorySoon();
  }
  schedule(schedule: Schedule) {
    this.#send({ type: "schedule", schedule });
  }
  setVolume(volume: number, muted: boolean) {
    this.#send({ type: "volume", volume, muted });
  }
  setSpeakerDelay(ms: number) {
    this.#send({ type: "speakerDelay", ms });
  }
  setChannel(channel: ChannelMode) {
    this.#send({ type: "channel", channel });
  }
  /** The click test: a tick at every whole host second while on (the player mixes it). */
  setClicks(on: boolean) {
    this.#send({ type: "clicks", on });
  }
  /** Calibration: the probe sounds from host time `atHostMs` (the player mixes it). */
  playProbe(atHostMs: number) {
    this.#send({ type: "probe", atHostMs });
  }
  async close() {
    this.#send({ type: "close" });
    await Promise.race([this.#closed, new Promise((r) => setTimeout(r, 1000))]);
    this.#worker.terminate();
  }
}

/**
 * The `audio` event for an opened output: which backend, whether it can be heard, and when it
 * cannot, a sentence that says why (no device found, or output switched off on purpose).
 */
export function audioEvent(o: { backend: string; audible: boolean; failure?: string }): {
  type: "audio";
  backend: string;
  audible: boolean;
  warning?: string;
} {
  const base = { type: "audio" as const, backend: o.backend, audible: o.audible };
  if (o.audible) return base;
  const warning = o.failure === undefined && o.backend === "null"
    ? "Audio output is off (--audio null): you won't hear playback"
    : "No audio output detected — you won't hear playback" +
      (o.failure ? ` (${o.failure})` : "");
  return { ...base, warning };
}

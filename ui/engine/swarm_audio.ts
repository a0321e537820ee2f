/// <reference lib="dom" />
/**
 * A swarm member's sound in a web page: the browser peer's output ({@link WebOutput}: the
 * native player placing every frame by the server's clock) and its decode worker, unchanged.
 * Only what differs is here: files come from the swarm, not from a host, and the speaker delay
 * is remembered by this browser.
 */
import type { HostMap } from "../../net/local_clock.ts";
import type { PlayerEvent, Schedule } from "../../audio/player.ts";
import type { DecodeReply, DecodeRequest } from "./decode_messages.ts";
import { WebOutput } from "./web_output.ts";

/** What a swarm member needs from a device that plays (none, for the native test members). */
export interface SwarmAudio {
  /** Creates and resumes the audio context: call inside the Join gesture. */
  start(): void;
  setClock(map: HostMap): void;
  /** Decodes a complete, verified file and keeps it ready to play. */
  load(fileId: string, name: string, bytes: Uint8Array): Promise<{ durationSec: number }>;
  has(fileId: string): boolean;
  rateOf(fileId: string): number;
  drop(fileId: string): void;
  schedule(s: Schedule): void;
  setDelay(ms: number): void;
  setClicks(on: boolean): void;
  setVolume(level: number, muted: boolean): void;
  readonly needsTap: boolean;
  tap(): Promise<void>;
  wake(): void;
  status(): unknown;
  close(): void;
  onEvent: (e: PlayerEvent) => void;
  onStateChange: () => void;
}

export class BrowserSwarmAudio implements SwarmAudio {
  #out: WebOutput | null = null;
  #worker: Worker | null = null;
  readonly #rates = new Map<string, number>();
  #delayMs = 0;
  onEvent: (e: PlayerEvent) => void = () => {};
  onStateChange: () => void = () => {};

  constructor(readonly base: string, readonly hiddenLatencyMs = 0) {}

  start(): void {
    if (this.#out) return;
    const out = new WebOutput(undefined, this.hiddenLatencyMs);
    this.#out = out;
    // iOS: play through the mute switch like a music app.
    const nav = navigator as Navigator & { audioSession?: { type: string } };
    if (nav.audioSession) nav.audioSession.type = "playback";
    out.onEvent = (e) => this.onEvent(e);
    out.onStateChange = () => this.onStateChange();
    out.setSpeakerDelay(this.#delayMs);
    void out.resume().then(() => this.onStateChange());
  }

  setClock(map: HostMap): void {
    this.#out?.setHostMap(map);
  }

  load(fileId: string, name: string, bytes: Uint8Array): Promise<{ durationSec: number }> {
    const worker = this.#worker ??= new Worker(`${this.base}/decode_worker.js`, {
      type: "module",
    });
    // A copy goes to the worker: the swarm keeps the file to offer it to others.
    const copy = bytes.slice().buffer;
    return new Promise((resolve, reject) => {
      const onMessage = (ev: MessageEvent<DecodeReply>) => {
        const m = ev.data;
        if (m.id !== fileId || m.type === "progress") return;
        worker.removeEventListener("message", onMessage);
        if (m.type === "error") return reject(new Error(m.message));
        this.#rates.set(fileId, m.rateHz);
        this.#out?.addTrack({ id: fileId, rateHz: m.rateHz, left: m.left, right: m.right });
        resolve({ durationSec: m.durationSec });
      };
      worker.addEventListener("message", onMessage);
      const req: DecodeRequest = { type: "decode", id: fileId, fileName: name, bytes: copy };
      worker.postMessage(req, [copy]);
    });
  }

  has(fileId: string): boolean {
    return this.#out?.hasTrack(fileId) ?? false;
  }
  rateOf(fileId: string): number {
    return this.#rates.get(fileId) ?? 48000;
  }
  drop(fileId: string): void {
    this.#out?.dropTrack(fileId);
    this.#rates.delete(fileId);
  }
  schedule(s: Schedule): void {
    this.#out?.schedule(s);
  }
  setDelay(ms: number): void {
    this.#delayMs = ms;
    this.#out?.setSpeakerDelay(ms);
  }
  setClicks(on: boolean): void {
    this.#out?.setClicks(on);
  }
  setVolume(level: number, muted: boolean): void {
    this.#out?.setVolume(level, muted);
  }
  get needsTap(): boolean {
    return this.#out?.needsGesture ?? false;
  }
  async tap(): Promise<void> {
    const out = this.#out;
    if (!out) return;
    if (out.status.state === "frozen") await out.ctx.suspend().catch(() => {});
    await out.resume();
    out.wake();
    this.onStateChange();
  }
  wake(): void {
    this.#out?.wake();
  }
  status(): unknown {
    const out = this.#out;
    return out ? { ...out.status, bufferMs: out.bufferMs, trace: out.trace } : null;
  }
  close(): void {
    void this.#out?.close();
    this.#out = null;
    this.#worker?.terminate();
    this.#worker = null;
    this.#rates.clear();
  }
}

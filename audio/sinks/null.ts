import { type AudioSink, realNowMs, type SinkTiming } from "../sink.ts";

/**
 * A sink that plays nowhere, paced by the monotonic clock: frame k is "heard" at
 * `startMs + k / rate`. Used when there is no audio device, and as the base of `wav`.
 */
export class NullSink implements AudioSink {
  readonly backend: "null" | "wav" = "null";
  readonly audible: boolean = false;
  protected startMs = 0;
  protected written = 0;
  readonly #aheadFrames: number;

  constructor(readonly rateHz = 48_000, aheadMs = 60) {
    this.#aheadFrames = Math.round((aheadMs * rateHz) / 1000);
  }

  open(): Promise<void> {
    this.startMs = realNowMs();
    return Promise.resolve();
  }

  #playedFrames(now = realNowMs()): number {
    return ((now - this.startMs) * this.rateHz) / 1000;
  }

  writableFrames(): number {
    return Math.max(0, Math.floor(this.#playedFrames() + this.#aheadFrames - this.written));
  }

  write(interleaved: Float32Array): void {
    this.written += interleaved.length / 2;
  }

  timing(): SinkTiming {
    const now = realNowMs();
    return { frame: this.#playedFrames(now), localMs: now };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

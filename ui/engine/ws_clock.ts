/**
 * The host's clock, seen from a web page: the same four-timestamp exchanges as native peers'
 * UDP pings, carried as `ping`/`pong` over the control WebSocket (a page has no UDP), fed to the
 * same {@link ClockFilter}. Fast at start so the clock locks within a few hundred ms, then twice
 * a second. Wi-Fi power save holds some packets for 100–300 ms: those exchanges have long round
 * trips, and the filter only fits the shortest ones, so they cost nothing.
 */
import { ClockFilter, sampleFromExchange } from "../../net/clock_filter.ts";

/** This page's clock (ms): epoch-based like the host's, with `performance.now()` resolution. */
export const pageNowMs = (): number => performance.timeOrigin + performance.now();

export class WsClock {
  readonly filter = new ClockFilter({ spread: false });
  #sent = new Set<number>();
  #n = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  lastSampleMs = -Infinity;
  onUpdate: () => void = () => {};

  constructor(readonly send: (t1: number) => boolean) {}

  /** (Re)starts pinging fast; after a reconnect too, to relock quickly. */
  start(): void {
    clearTimeout(this.#timer);
    this.#n = 0;
    this.#tick();
  }

  #tick = () => {
    const t1 = pageNowMs();
    if (this.send(t1)) {
      this.#sent.add(t1);
      if (this.#sent.size > 64) this.#sent.delete(this.#sent.values().next().value!);
    }
    const n = ++this.#n;
    this.#timer = setTimeout(this.#tick, n < 10 ? 20 : n < 30 ? 50 : 500);
  };

  /** A `pong` arrived; `t4` is when (taken first thing in the message handler). */
  pong(t1: number, t2: number, t3: number, t4: number): void {
    // Only answers to pings this page sent, each once.
    if (!this.#sent.delete(t1)) return;
    this.filter.add(sampleFromExchange({ t1, t2, t3, t4 }));
    this.lastSampleMs = t4;
    this.onUpdate();
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

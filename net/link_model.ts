/**
 * A model of one direction of a network link: one-way delay with jitter, random loss and a
 * bandwidth limit. Kernel netem is not available everywhere PhaseLock is tested, so the link
 * emulator applies this model in user space. Pure: it is given the time and a random source and
 * answers *when* a packet or stream chunk is delivered, or that it is lost.
 */

export interface LinkParams {
  /** Mean one-way delay (ms). */
  delayMs: number;
  /** Each packet's delay is uniform in [delayMs − jitterMs, delayMs + jitterMs] (ms). */
  jitterMs: number;
  /** Probability that a datagram is dropped (0..1). */
  loss: number;
  /**
   * Probability that a stream chunk is "lost" and retransmitted: it (and, keeping order,
   * everything behind it) arrives one retransmission timeout late, as on a lossy TCP path.
   */
  streamLoss: number;
  /** Link capacity in kbit/s; 0 means unlimited. */
  bandwidthKbps: number;
  /** Datagrams that would wait longer than this for the link are dropped (tail drop). */
  queueLimitMs: number;
}

export const PERFECT_LINK: LinkParams = {
  delayMs: 0,
  jitterMs: 0,
  loss: 0,
  streamLoss: 0,
  bandwidthKbps: 0,
  queueLimitMs: 1000,
};

/** Small, fast, seedable PRNG (mulberry32) so that emulated runs can be repeated. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function validateLinkParams(p: LinkParams): LinkParams {
  const bad = (what: string) => {
    throw new RangeError(`Link ${what}.`);
  };
  if (!(p.delayMs >= 0 && p.delayMs <= 10_000)) bad("delay must be 0–10000 ms");
  if (!(p.jitterMs >= 0 && p.jitterMs <= p.delayMs)) bad("jitter must be 0 ms up to the delay");
  if (!(p.loss >= 0 && p.loss < 1)) bad("loss must be at least 0 and below 1");
  if (!(p.streamLoss >= 0 && p.streamLoss < 1)) bad("stream loss must be at least 0 and below 1");
  if (!(p.bandwidthKbps >= 0)) bad("bandwidth must be 0 (unlimited) or more kbit/s");
  if (!(p.queueLimitMs > 0)) bad("queue limit must be above 0 ms");
  return p;
}

export class LinkDirection {
  /** When the link finishes sending everything accepted so far (ms). */
  #busyUntilMs = 0;
  readonly stats = { packets: 0, lost: 0, bytes: 0, retransmits: 0 };

  constructor(readonly params: LinkParams, readonly random: () => number = Math.random) {
    validateLinkParams(params);
  }

  /** Time the last bit of `bytes` leaves the sender, queueing behind earlier traffic. */
  #serialize(nowMs: number, bytes: number): number {
    const bw = this.params.bandwidthKbps;
    const start = Math.max(nowMs, this.#busyUntilMs);
    const done = bw > 0 ? start + (bytes * 8) / bw : start;
    this.#busyUntilMs = done;
    return done;
  }

  #propagation(): number {
    const { delayMs, jitterMs } = this.params;
    return delayMs + (this.random() * 2 - 1) * jitterMs;
  }

  /** Delivery time of a datagram sent at `nowMs`, or null if it is lost. */
  datagram(nowMs: number, bytes: number): number | null {
    this.stats.packets++;
    if (this.random() < this.params.loss) {
      this.stats.lost++;
      return null;
    }
    const bw = this.params.bandwidthKbps;
    if (bw > 0 && this.#busyUntilMs - nowMs > this.params.queueLimitMs) {
      this.stats.lost++;
      return null;
    }
    this.stats.bytes += bytes;
    return this.#serialize(nowMs, bytes) + this.#propagation();
  }

  /**
   * Delivery time of a stream chunk sent at `nowMs`. Streams are reliable and ordered: a chunk
   * never arrives before `notBeforeMs` (the previous chunk of the same stream).
   */
  chunk(nowMs: number, bytes: number, notBeforeMs = 0): number {
    this.stats.packets++;
    this.stats.bytes += bytes;
    let at = this.#serialize(nowMs, bytes) + this.#propagation();
    if (this.random() < this.params.streamLoss) {
      this.stats.retransmits++;
      // A retransmission timeout: at least 200 ms (Linux's floor), else about two round trips.
      at += Math.max(200, 4 * this.params.delayMs);
    }
    return Math.max(at, notBeforeMs);
  }
}

import { ClockFilter, sampleFromExchange } from "./clock_filter.ts";
import type { LocalClock } from "./local_clock.ts";

/**
 * NTP-style clock pings over UDP on the same port number as the host's TCP port.
 * Packet (40 bytes, little-endian): "PLK1", type (1 ping, 2 pong), 3 pad, peerId u32, seq u32,
 * t1 f64 (peer send), t2 f64 (host receive), t3 f64 (host send). Anything else is dropped.
 */
const MAGIC = 0x314b4c50; // "PLK1"
export const PACKET_BYTES = 40;

export function encodePacket(
  p: { type: 1 | 2; peerId: number; seq: number; t1: number; t2?: number; t3?: number },
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(PACKET_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, p.type);
  v.setUint32(8, p.peerId, true);
  v.setUint32(12, p.seq, true);
  v.setFloat64(16, p.t1, true);
  v.setFloat64(24, p.t2 ?? 0, true);
  v.setFloat64(32, p.t3 ?? 0, true);
  return b;
}

export function decodePacket(b: Uint8Array) {
  if (b.byteLength !== PACKET_BYTES) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const type = v.getUint8(4);
  if (v.getUint32(0, true) !== MAGIC || (type !== 1 && type !== 2)) return null;
  const p = {
    type: type as 1 | 2,
    peerId: v.getUint32(8, true),
    seq: v.getUint32(12, true),
    t1: v.getFloat64(16, true),
    t2: v.getFloat64(24, true),
    t3: v.getFloat64(32, true),
  };
  return [p.t1, p.t2, p.t3].every(Number.isFinite) ? p : null;
}

/** Host side: answers every valid ping with its own receive and send times. */
export class ClockResponder {
  #conn: Deno.DatagramConn | null = null;
  /** Last ping time per peer id (host ms), for liveness. */
  readonly lastPing = new Map<number, number>();

  constructor(readonly opts: { port: number; hostname?: string; clock: LocalClock }) {}

  start(): void {
    this.#conn = Deno.listenDatagram({
      port: this.opts.port,
      hostname: this.opts.hostname ?? "0.0.0.0",
      transport: "udp",
    });
    this.#serve(this.#conn);
  }

  async #serve(conn: Deno.DatagramConn) {
    try {
      for await (const [data, addr] of conn) {
        const t2 = this.opts.clock.now();
        const p = decodePacket(data);
        if (!p || p.type !== 1) continue;
        this.lastPing.set(p.peerId, t2);
        const reply = encodePacket({ ...p, type: 2, t2, t3: this.opts.clock.now() });
        await conn.send(reply, addr).catch(() => {});
      }
    } catch { /* closed */ }
  }

  stop(): void {
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#conn = null;
  }
}

/**
 * Peer side: pings fast at start (every 20 ms for the first 10, then 50 ms up to the 30th) so
 * the filter locks within a few hundred ms of start-up, then every 250 ms, and feeds the exchanges to a {@link ClockFilter}.
 */
export class ClockPinger {
  readonly filter = new ClockFilter();
  #conn: Deno.DatagramConn | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #seq = 0;
  #sent = new Map<number, number>();
  #departed = new Map<number, number>();
  lastSampleMs = -Infinity;
  onUpdate: () => void = () => {};

  constructor(
    readonly opts: {
      hostname: string;
      port: number;
      /** Sent in every ping; 0 until the host has assigned one. */
      peerId: number;
      clock: LocalClock;
    },
  ) {}

  start(): void {
    this.#conn = Deno.listenDatagram({ port: 0, hostname: "0.0.0.0", transport: "udp" });
    this.#receive(this.#conn);
    this.#tick();
  }

  #tick = () => {
    const seq = ++this.#seq;
    const t1 = this.opts.clock.now();
    this.#sent.set(seq, t1);
    if (this.#sent.size > 64) this.#sent.delete(this.#sent.keys().next().value!);
    if (this.#departed.size > 64) this.#departed.delete(this.#departed.keys().next().value!);
    this.#conn?.send(encodePacket({ type: 1, peerId: this.opts.peerId, seq, t1 }), {
      transport: "udp",
      hostname: this.opts.hostname,
      port: this.opts.port,
    }).then(() => this.#departed.set(seq, this.opts.clock.now()), () => {});
    // Over a WAN (round trip > 5 ms) keep pinging every 100 ms: the per-leg minima the filter
    // uses there converge with the number of samples (40 B each way, nothing to a link).
    const wan = (this.filter.estimate?.rttMs ?? 0) > 5;
    this.#timer = setTimeout(this.#tick, seq < 10 ? 20 : seq < 30 ? 50 : wan ? 100 : 250);
  };

  async #receive(conn: Deno.DatagramConn) {
    try {
      for await (const [data] of conn) {
        const t4 = this.opts.clock.now();
        const p = decodePacket(data);
        // Only answers to pings we sent, each once: replayed or forged pongs are ignored.
        if (!p || p.type !== 2 || this.#sent.get(p.seq) !== p.t1) continue;
        this.#sent.delete(p.seq);
        // Where a ping "left" matters at the 0.1 ms level. Measured between processes sharing
        // one clock (bench lan, clock error of the estimate): stamping before send() gave
        // +0.10…0.16 ms of offset bias, stamping when send() resolved +0.04…0.10 ms (a PTP-like
        // follow-up carrying the host's own completed-send time made it worse, +0.15). So the
        // offset uses the completed send, while samples are ranked by the round trip from the
        // pre-send stamp, so that exchanges whose send was slow still rank low.
        const departed = this.#departed.get(p.seq) ?? p.t1;
        this.#departed.delete(p.seq);
        const sample = sampleFromExchange({ t1: departed, t2: p.t2, t3: p.t3, t4 });
        // The ranking also counts how long the send took to complete: the packet left at some
        // point in that span, so a long one makes the offset uncertain even when the round
        // trip looks short (replayed from bench lan's exchanges: clock error p95 −10–60 % on
        // four of six peers, worse on two; 0.119 → 0.106 ms on average).
        sample.rttMs = sampleFromExchange({ t1: p.t1, t2: p.t2, t3: p.t3, t4 }).rttMs +
          (departed - p.t1);
        this.filter.add(sample);
        this.lastSampleMs = t4;
        this.onUpdate();
      }
    } catch { /* closed */ }
  }

  stop(): void {
    clearTimeout(this.#timer);
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#conn = null;
  }
}

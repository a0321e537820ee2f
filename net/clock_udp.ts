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
 * Peer side: pings fast at start (every 50 ms for the first 20) to lock within a second, then
 * every 250 ms, and feeds the exchanges to a {@link ClockFilter}.
 */
export class ClockPinger {
  readonly filter = new ClockFilter();
  #conn: Deno.DatagramConn | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #seq = 0;
  #sent = new Map<number, number>();
  lastSampleMs = -Infinity;
  onUpdate: () => void = () => {};

  constructor(
    readonly opts: { hostname: string; port: number; peerId: number; clock: LocalClock },
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
    this.#conn?.send(encodePacket({ type: 1, peerId: this.opts.peerId, seq, t1 }), {
      transport: "udp",
      hostname: this.opts.hostname,
      port: this.opts.port,
    }).catch(() => {});
    this.#timer = setTimeout(this.#tick, seq < 20 ? 50 : 250);
  };

  async #receive(conn: Deno.DatagramConn) {
    try {
      for await (const [data] of conn) {
        const t4 = this.opts.clock.now();
        const p = decodePacket(data);
        // Only answers to pings we sent, each once: replayed or forged pongs are ignored.
        if (!p || p.type !== 2 || this.#sent.get(p.seq) !== p.t1) continue;
        this.#sent.delete(p.seq);
        this.filter.add(sampleFromExchange({ t1: p.t1, t2: p.t2, t3: p.t3, t4 }));
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

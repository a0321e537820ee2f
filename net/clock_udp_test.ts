import { assertEquals, assertTrue } from "../tests/assert.ts";
import {
  ClockPinger,
  ClockResponder,
  decodePacket,
  encodePacket,
  PACKET_BYTES,
} from "./clock_udp.ts";
import { makeLocalClock } from "./local_clock.ts";

Deno.test("clock packets round-trip and anything malformed is dropped", () => {
  const p = {
    type: 2 as const,
    peerId: 7,
    seq: 99,
    t1: 1.75e12 + 0.123,
    t2: 1.75e12 + 1.5,
    t3: 1.75e12 + 1.6,
  };
  assertEquals(decodePacket(encodePacket(p)), p);
  assertEquals(decodePacket(encodePacket(p).subarray(0, 39)), null);
  assertEquals(decodePacket(new Uint8Array(PACKET_BYTES + 1)), null);
  const bad = encodePacket(p);
  bad[0] ^= 1;
  assertEquals(decodePacket(bad), null);
  const nan = encodePacket(p);
  new DataView(nan.buffer).setFloat64(24, NaN, true);
  assertEquals(decodePacket(nan), null);
  let seed = 5, accepted = 0;
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(PACKET_BYTES);
    for (let k = 0; k < b.length; k++) b[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    if (decodePacket(b)) accepted++;
  }
  assertTrue(accepted === 0, "random datagrams never pass the magic check");
});

Deno.test({
  name: "a pinger locks onto a responder's clock over loopback (two-step exchange)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const host = new ClockResponder({ port, hostname: "127.0.0.1", clock: makeLocalClock() });
    // The peer's clock is 2.5 s ahead and runs 100 ppm fast.
    const peerClock = makeLocalClock({ offsetMs: 2500, skewPpm: 100 });
    const pinger = new ClockPinger({ hostname: "127.0.0.1", port, peerId: 3, clock: peerClock });
    host.start();
    pinger.start();
    try {
      for (let i = 0; i < 100 && !pinger.filter.estimate?.locked; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const e = pinger.filter.estimate;
      assertTrue(e?.locked, "locked within 2 s");
      // True host − local at the estimate's reference time.
      const truth = peerClock.toReal(e.refLocalMs) - e.refLocalMs;
      assertTrue(Math.abs(e.offsetMs - truth) < 0.5, `offset ${e.offsetMs} vs ${truth}`);
      assertTrue(host.lastPing.get(3) !== undefined, "pings carry the peer id");
    } finally {
      pinger.stop();
      host.stop();
    }
  },
});

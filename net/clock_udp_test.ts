import { assertEquals, assertTrue } from "../tests/assert.ts";
import { decodePacket, encodePacket, PACKET_BYTES } from "./clock_udp.ts";

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

import { assertEquals, assertNear, assertThrows, assertTrue } from "../tests/assert.ts";
import { LinkDirection, PERFECT_LINK, seededRandom } from "./link_model.ts";

const wan = { ...PERFECT_LINK, delayMs: 40, jitterMs: 10, loss: 0.02 };

Deno.test("datagrams arrive after delay ± jitter, uniformly spread", () => {
  const link = new LinkDirection(wan, seededRandom(1));
  const delays: number[] = [];
  for (let i = 0; i < 20000; i++) {
    const at = link.datagram(i * 10, 40);
    if (at !== null) delays.push(at - i * 10);
  }
  assertTrue(delays.every((d) => d >= 30 && d <= 50), "every delay within 40 ± 10 ms");
  const mean = delays.reduce((s, d) => s + d, 0) / delays.length;
  assertNear(mean, 40, 0.2, "mean delay");
  const low = delays.filter((d) => d < 35).length / delays.length;
  assertNear(low, 0.25, 0.02, "a quarter of delays in the lowest quarter of the range");
});

Deno.test("datagram loss follows the configured rate", () => {
  const link = new LinkDirection(wan, seededRandom(2));
  for (let i = 0; i < 50000; i++) link.datagram(i, 40);
  assertNear(link.stats.lost / link.stats.packets, 0.02, 0.003, "loss fraction");
});

Deno.test("the same seed gives the same link", () => {
  const a = new LinkDirection(wan, seededRandom(7)), b = new LinkDirection(wan, seededRandom(7));
  const run = (l: LinkDirection) => Array.from({ length: 100 }, (_, i) => l.datagram(i, 40));
  assertEquals(run(a), run(b));
});

Deno.test("bandwidth serialises traffic: 1 Mbit/s carries 125 kB in one second", () => {
  const link = new LinkDirection({ ...PERFECT_LINK, bandwidthKbps: 1000 }, seededRandom(3));
  let last = 0;
  for (let i = 0; i < 125; i++) last = link.chunk(0, 1000, last);
  assertNear(last, 1000, 1e-9, "last chunk delivered");
  // A datagram behind that backlog waits for it (within the queue limit)…
  assertNear(link.datagram(0, 125)!, 1001, 1e-9, "datagram after the backlog");
  // …and one that would wait past the limit is dropped.
  const full = new LinkDirection({ ...PERFECT_LINK, bandwidthKbps: 8, queueLimitMs: 100 });
  assertEquals(full.datagram(0, 1000), 1000); // 1 s of serialisation, queue was empty
  assertEquals(full.datagram(0, 10), null);
});

Deno.test("stream chunks keep their order and are never lost, only delayed", () => {
  const link = new LinkDirection({ ...wan, streamLoss: 0.1 }, seededRandom(4));
  let prev = 0;
  let late = 0;
  for (let i = 0; i < 5000; i++) {
    const at = link.chunk(i, 1400, prev);
    assertTrue(at >= prev, "in order");
    if (at - i > 50) late++;
    prev = at;
  }
  assertEquals(link.stats.lost, 0);
  assertNear(link.stats.retransmits / 5000, 0.1, 0.015, "retransmission rate");
  assertTrue(late > 400, `retransmitted chunks hold back the stream (${late} late)`);
});

Deno.test("impossible link settings are refused with a sentence", () => {
  assertThrows(() => new LinkDirection({ ...wan, loss: 1 }), /loss/);
  assertThrows(() => new LinkDirection({ ...wan, jitterMs: 50 }), /jitter/);
  assertThrows(() => new LinkDirection({ ...wan, delayMs: -1 }), /delay/);
});
